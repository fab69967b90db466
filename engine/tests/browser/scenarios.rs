//! What the page shows, checked against the incident API: each scenario drives the page as an
//! operator would. They need the incident API under /api/ (the ops crate's router, merged by
//! engine/src/console.rs).

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;

use super::{ApiClient, Browser, wait_for};

/// Every request is to the console's own address (or an inline `data:` URL).
pub fn assert_all_local(urls: &[String], addr: &str) {
    assert!(!urls.is_empty(), "the performance log recorded no request");
    let outside: Vec<&String> = urls
        .iter()
        .filter(|u| !(u.starts_with(&format!("http://{addr}/")) || u.starts_with("data:")))
        .collect();
    assert!(outside.is_empty(), "requests leaving {addr}: {outside:?}");
}

/// Logs in with `token` (after a wrong one is refused) and waits for the first data.
pub fn login(browser: &Browser, url: &str, token: &str) {
    browser.goto("about:blank");
    browser.requested_urls();
    browser.goto(url);
    browser.wait_js(
        Duration::from_secs(20),
        "the login form",
        "return window.cbConsole && !document.getElementById('login').hidden",
    );
    browser.type_into("#token", "not-a-token");
    browser.click("#login-button");
    browser.wait_js(
        Duration::from_secs(10),
        "the wrong token refused",
        "return document.getElementById('login-error').textContent.includes('令牌无效')",
    );
    assert_eq!(
        browser.js("return document.getElementById('app').hidden", json!([])),
        json!(true),
        "a wrong token shows nothing"
    );
    browser.js("document.getElementById('token').value = ''", json!([]));
    browser.type_into("#token", token);
    browser.click("#login-button");
    browser.wait_js(
        Duration::from_secs(20),
        "the console to load its data",
        "return window.cbConsole.ready && window.cbConsole.live",
    );
}

/// Incident ids shown in the work list and on the map (markers).
pub fn shown(browser: &Browser) -> (BTreeSet<String>, BTreeSet<String>) {
    let v = browser.js(
        "const ids = (sel) => [...document.querySelectorAll(sel)].map((e) => e.dataset.incidentId);
         return [ids('#worklist li[data-incident-id]'), ids('.leaflet-marker-pane [data-incident-id]')];",
        json!([]),
    );
    let set = |x: &serde_json::Value| {
        x.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    (set(&v[0]), set(&v[1]))
}

/// The base layer has every community the API lists, the heat layer every live cell, and the
/// heat layer draws 10,000 cells (generated in the page with h3-js over the city) in one pass.
pub fn scenario_map_draws_boundaries_and_ten_thousand_cells(browser: &Browser, api: &ApiClient) {
    let communities = api.get_json("/api/jurisdictions")["features"]
        .as_array()
        .unwrap()
        .len();
    assert!(communities > 0, "the API lists no community");
    assert_eq!(
        browser.js("return window.cbConsole.communities", json!([])),
        json!(communities)
    );
    let painted = browser.js(
        "const c = document.querySelector('.leaflet-base-pane canvas'); if (!c) return 0;
         const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
         let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n;",
        json!([]),
    );
    assert!(
        painted.as_u64().unwrap() > 10_000,
        "the boundaries are painted: {painted}"
    );
    let drawn = browser.js(
        "const m = window.cbConsole.map;
         const b = m.map.getBounds();
         const poly = [[b.getSouth(), b.getWest()], [b.getNorth(), b.getWest()], [b.getNorth(), b.getEast()], [b.getSouth(), b.getEast()]];
         let cells = [];
         for (let res = 8; res <= 12 && cells.length < 10000; res++) cells = h3.polygonToCells(poly, res);
         cells = cells.slice(0, 10000).map((cell, i) => ({ cell, value: 1 + (i % 17) }));
         const started = performance.now();
         m.setCells(cells);
         return [Number(m.map.getContainer().dataset.cellsDrawn), performance.now() - started];",
        json!([]),
    );
    assert_eq!(drawn[0], json!(10_000), "10,000 cells drawn");
    eprintln!(
        "heat layer: 10,000 cells drawn in {:.0} ms",
        drawn[1].as_f64().unwrap()
    );
}

/// Waits until `id` is on the map and in the list; returns how long that took.
pub fn wait_shown(browser: &Browser, id: &str, timeout: Duration) -> Duration {
    let started = std::time::Instant::now();
    wait_for(
        timeout,
        &format!("incident {id} on the map and in the list"),
        || {
            let (list, map) = shown(browser);
            (list.contains(id) && map.contains(id)).then_some(())
        },
    );
    started.elapsed()
}

/// Clicks the incident's marker, then 签收 Ack; the panel, the API and the event log agree.
pub fn scenario_ack_from_the_page(browser: &Browser, api: &ApiClient, id: &str) {
    browser.js(
        "document.querySelector(`.leaflet-marker-pane [data-incident-id=\"${arguments[0]}\"]`).parentElement.click()",
        json!([id]),
    );
    browser.wait_js(
        Duration::from_secs(5),
        "the incident panel",
        &format!("return document.querySelector('#detail[data-incident-id=\"{id}\"] button[data-action=\"ack\"]') !== null"),
    );
    browser.type_into("#action-comment", "已到场 on site");
    browser.click("#detail button[data-action=\"ack\"]");
    browser.wait_js(
        Duration::from_secs(5),
        "the panel to show the acknowledged incident",
        &format!("return document.querySelector('#detail[data-incident-id=\"{id}\"]').dataset.state === 'acknowledged'"),
    );
    let incident = api.get_json(&format!("/api/incidents/{id}"));
    assert_eq!(incident["state"], "acknowledged", "{incident}");
    let ack = incident["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|e| e["type"] == "acknowledged");
    let ack = ack.unwrap_or_else(|| panic!("no acknowledged event in the timeline: {incident}"));
    assert_eq!(ack["comment"], "已到场 on site", "{ack}");
}

/// Every event of the log the caller may see, oldest first (`/api/events`, paged).
pub fn event_log(api: &ApiClient) -> Vec<serde_json::Value> {
    let mut all = Vec::new();
    let mut after = 0u64;
    loop {
        let page = api.get_json(&format!("/api/events?after={after}&limit=1000"));
        let page = page.as_array().unwrap().clone();
        if page.is_empty() {
            return all;
        }
        after = page.last().unwrap()["seq"].as_u64().unwrap();
        all.extend(page);
    }
}

/// The incidents open at `at` (RFC 3339, compared as instants) by folding the event log: those
/// opened at or before `at` and not closed or voided at or before it.
///
/// Only an `opened` event makes an incident exist: events are placed by event time, not by log
/// order, and an action is stamped with the desk's clock (timers and the watermark), which may
/// sit behind the event time of the alert that opened the incident; an `acknowledged` right
/// after the opening can carry an earlier time than the `opened` itself. At an instant between
/// the two the incident did not exist yet.
pub fn open_at(log: &[serde_json::Value], at: &str) -> BTreeSet<String> {
    let at = chrono::DateTime::parse_from_rfc3339(at).unwrap();
    let mut open = BTreeSet::new();
    for e in log {
        let when = chrono::DateTime::parse_from_rfc3339(e["at"].as_str().unwrap()).unwrap();
        if when > at {
            continue;
        }
        let id = e["incident_id"].as_str().unwrap().to_string();
        match e["type"].as_str().unwrap() {
            "opened" => {
                open.insert(id);
            }
            "closed" | "voided" => {
                open.remove(&id);
            }
            _ => {}
        }
    }
    open
}

/// Moves the slider to several positions; each time the page shows exactly the incidents the
/// event log has open at the instant it names.
pub fn scenario_time_travel_matches_the_event_log(browser: &Browser, api: &ApiClient) {
    // The live city opens incidents as it goes: wait until the log has enough of a past.
    wait_for(
        Duration::from_secs(120),
        "at least 20 incident events to travel through",
        || (event_log(api).len() >= 20).then_some(()),
    );
    let mut differing = BTreeSet::new();
    let mut previous = String::new();
    let mut positions = vec![150, 400, 650, 900];
    let mut retries = 0;
    while let Some(&position) = positions.first() {
        // The log read before and after the page's answer: the city goes on meanwhile, and an
        // event may land at or before the instant shown (event times are the engine's clock,
        // not the log's order). Where the two reads disagree about the instant, try the next
        // slider step (a new instant, so the page's answer is a new one too).
        let log = event_log(api);
        browser.js(
            "const s = document.getElementById('tt-slider'); s.value = arguments[0];
             s.dispatchEvent(new Event('change'));",
            json!([position]),
        );
        // One read of the time shown and the ids shown, once the page shows the new position.
        let snapshot = browser.wait_js(
            Duration::from_secs(5),
            "the page to show the new position's time",
            &format!(
                "const l = document.getElementById('worklist');
                 if (l.dataset.mode !== 'history' || !l.dataset.at || l.dataset.at === '{previous}') return null;
                 const ids = (sel) => [...document.querySelectorAll(sel)].map((e) => e.dataset.incidentId);
                 return [l.dataset.at, ids('#worklist li[data-incident-id]'), ids('.leaflet-marker-pane [data-incident-id]')];"
            ),
        );
        let at = snapshot[0].as_str().unwrap().to_string();
        let set = |x: &serde_json::Value| -> BTreeSet<String> {
            x.as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_string())
                .collect()
        };
        let (list, map) = (set(&snapshot[1]), set(&snapshot[2]));
        let expected = open_at(&log, &at);
        let log = event_log(api);
        if open_at(&log, &at) != expected {
            retries += 1;
            assert!(
                retries < 10,
                "the log kept changing before the slider's instant"
            );
            positions[0] += 1;
            previous = at;
            continue;
        }
        positions.remove(0);
        eprintln!(
            "time travel to {at} (slider {position}): {} open incidents",
            expected.len()
        );
        assert_eq!(list, expected, "the list at {at} (slider {position})");
        // On the map: those with a point (a rule may give its alerts no place).
        let placed: BTreeSet<String> = expected
            .iter()
            .filter(|id| {
                log.iter()
                    .any(|e| e["incident_id"] == id.as_str() && e["location"]["lat"].is_number())
            })
            .cloned()
            .collect();
        assert_eq!(map, placed, "the map at {at} (slider {position})");
        differing.insert(expected);
        previous = at;
    }
    assert!(
        differing.len() > 1,
        "the positions tried all show the same incidents: the test would not see a wrong time"
    );
    browser.click("#tt-live");
    browser.wait_js(
        Duration::from_secs(5),
        "live again",
        "return document.getElementById('worklist').dataset.mode === 'live'",
    );
}

/// A street's operator sees its own communities and the incidents placed in them or held by
/// its units, never another street's, while other streets have incidents (the city's view).
pub fn scenario_a_street_sees_only_its_own(
    browser: &Browser,
    city: &ApiClient,
    street: &ApiClient,
) {
    let me = street.get_json("/api/me");
    assert_eq!(me["level"], "street", "{me}");
    let prefix = me["unit"].as_str().unwrap()[..9].to_string();
    let ours = |i: &serde_json::Value| {
        ["unit", "home"]
            .iter()
            .any(|k| i[*k].as_str().is_some_and(|u| u.starts_with(&prefix)))
    };
    let all = city.get_json("/api/incidents?state=open");
    let all = all.as_array().unwrap();
    assert!(
        all.iter().any(|i| !ours(i)),
        "the scene has no incident outside street {prefix}: the check would prove nothing"
    );
    let (list, map) = shown(browser);
    assert!(
        !list.is_empty(),
        "the street sees none of its own incidents"
    );
    for id in list.iter().chain(&map) {
        let incident = all.iter().find(|i| i["incident_id"] == id.as_str());
        let incident = incident
            .unwrap_or_else(|| panic!("{id} is shown to the street but is not open for the city"));
        assert!(
            ours(incident),
            "street {prefix} is shown another street's incident: {incident}"
        );
    }
    let ids: BTreeSet<String> = street
        .get_json("/api/incidents?state=open")
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["incident_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(list, ids, "the list is what the API gives the street");
    let communities = street.get_json("/api/jurisdictions");
    for f in communities["features"].as_array().unwrap() {
        let code = f["properties"]["code"].as_str().unwrap();
        assert!(
            code.starts_with(&prefix),
            "street {prefix} gets community {code}'s boundary"
        );
    }
}
