//! The incident HTTP API (JSON under `/api/`), for the operations console and other systems.
//!
//! Every request carries `Authorization: Bearer <token>`; the token's unit decides what the
//! caller sees and may do (its own subtree). Authentication is a layer ([`require_caller`]);
//! handlers return [`ApiError`], mapped to status codes in one place.
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/me` | `{"unit","name","level"}` |
//! | `GET /api/units` | the units the caller may see |
//! | `GET /api/jurisdictions` | GeoJSON of the caller's communities |
//! | `GET /api/incidents?state=open\|all&level=&unit=&department=&severity=&at=` | incidents sorted by `due_at` (`at`: as they stood then) |
//! | `GET /api/incidents/{id}` | one incident with its `timeline` |
//! | `GET /api/incidents/{id}/cap` | its latest CAP 1.2 message (XML) |
//! | `POST /api/incidents/{id}/actions` | `{"action", "comment"?, "due_at"?, "to"?}` → the updated incident |
//! | `GET /api/events?after=&limit=` | the event log, oldest first |
//! | `GET /api/stream` | server-sent events: `incident` and `cells` |
//! | `GET /api/cells` | the heat layer: alerts per cell in the last hour of event time |
//! | `GET /api/indicators?day=YYYY-MM-DD` | indicators per unit for that local day |
//!
//! Limits and timeouts are the server's layers (`engine/src/http.rs`); this router adds a
//! 64 KiB body limit.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use futures::Stream;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::access::Caller;
use crate::desk::{Desk, StreamItem};
use crate::incident::{Action, ActionKind, Book, Incident, Refusal};
use crate::policy::Severity;
use crate::time::{Ms, parse_rfc3339};
use crate::unit::{Code, Level};

/// Largest request body accepted, bytes.
pub const MAX_BODY: usize = 64 * 1024;
/// Most events one `/api/events` answer carries.
pub const MAX_EVENTS: usize = 10_000;

/// The API's routes, all under `/api/`, behind the bearer-token layer.
pub fn router(desk: Arc<Desk>) -> Router {
    Router::new()
        .route("/api/me", get(me))
        .route("/api/units", get(units))
        .route("/api/jurisdictions", get(jurisdictions))
        .route("/api/incidents", get(incidents))
        .route("/api/incidents/{id}", get(incident))
        .route("/api/incidents/{id}/cap", get(cap))
        .route("/api/incidents/{id}/actions", post(act))
        .route("/api/events", get(events))
        .route("/api/stream", get(stream))
        .route("/api/cells", get(cells))
        .route("/api/indicators", get(indicators))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&desk),
            require_caller,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .with_state(desk)
}

/// Why a request failed; the one place errors become status codes.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No token, or an unknown one: 401.
    #[error("missing or unknown bearer token")]
    Unauthorized,
    /// Outside the caller's subtree, or not the caller's to do: 403.
    #[error("{0}")]
    Forbidden(String),
    /// No such thing: 404.
    #[error("{0}")]
    NotFound(String),
    /// A malformed request or an action impossible now: 400 (nothing changed).
    #[error("{0}")]
    BadRequest(String),
    /// The desk could not write its outputs: 500.
    #[error("{0}")]
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let mut response = (status, Json(json!({"error": self.to_string()}))).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::NotFound(_) => ApiError::NotFound(r.to_string()),
            Refusal::Forbidden(_) | Refusal::UnknownUnit(_) => ApiError::Forbidden(r.to_string()),
            Refusal::Invalid(_) => ApiError::BadRequest(r.to_string()),
        }
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The layer checking `Authorization: Bearer <token>` and attaching the [`Caller`].
///
/// # Errors
/// 401 when the token is missing or unknown.
pub async fn require_caller(
    State(desk): State<Arc<Desk>>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let caller = bearer(request.headers())
        .and_then(|t| desk.access().caller(t))
        .cloned()
        .ok_or(ApiError::Unauthorized)?;
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

async fn not_found() -> ApiError {
    ApiError::NotFound("no such API route".into())
}

async fn me(State(desk): State<Arc<Desk>>, Extension(caller): Extension<Caller>) -> Json<Value> {
    let ctx = desk.context();
    Json(json!({
        "unit": caller.unit,
        "name": ctx.jurisdictions.name(caller.unit),
        "level": caller.unit.level(),
    }))
}

async fn units(State(desk): State<Arc<Desk>>, Extension(caller): Extension<Caller>) -> Json<Value> {
    let ctx = desk.context();
    let units: Vec<Value> = ctx
        .jurisdictions
        .subtree(caller.unit)
        .map(|u| json!({"code": u.code, "name": u.name, "level": u.level, "parent": u.parent}))
        .collect();
    Json(Value::Array(units))
}

async fn jurisdictions(
    State(desk): State<Arc<Desk>>,
    Extension(caller): Extension<Caller>,
) -> Json<Value> {
    Json(desk.context().jurisdictions.geojson(caller.unit))
}

#[derive(Debug, Deserialize)]
struct IncidentQuery {
    state: Option<String>,
    level: Option<String>,
    unit: Option<String>,
    department: Option<String>,
    severity: Option<String>,
    at: Option<String>,
}

/// An incident as the API shows it: `overdue` also when its deadline is past the clock.
fn incident_json(inc: &Incident, now: Ms) -> Value {
    let mut v = serde_json::to_value(inc).expect("incidents serialize");
    let overdue = inc.overdue || (!inc.state.is_final() && inc.due_at.is_some_and(|d| d < now));
    v["overdue"] = Value::Bool(overdue);
    v
}

async fn incidents(
    State(desk): State<Arc<Desk>>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<IncidentQuery>,
) -> ApiResult<Json<Value>> {
    let open_only = match q.state.as_deref().unwrap_or("open") {
        "open" => true,
        "all" => false,
        other => {
            return Err(ApiError::BadRequest(format!(
                "state `{other}`: open or all"
            )));
        }
    };
    let level: Option<Level> = q
        .level
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .transpose()
        .map_err(ApiError::BadRequest)?;
    let severity: Option<Severity> = q
        .severity
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .transpose()
        .map_err(ApiError::BadRequest)?;
    let unit: Option<Code> = q
        .unit
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .transpose()
        .map_err(ApiError::BadRequest)?;
    if let Some(u) = unit
        && !caller.unit.contains(u)
    {
        return Err(ApiError::Forbidden(format!(
            "unit {u} is outside unit {}'s jurisdiction",
            caller.unit
        )));
    }
    let at: Option<Ms> = q
        .at
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| {
            parse_rfc3339(s).ok_or_else(|| ApiError::BadRequest(format!("at `{s}`: not RFC 3339")))
        })
        .transpose()?;
    let now = at.unwrap_or_else(|| desk.now());
    let filter = |i: &&Incident| {
        i.visible_to(caller.unit)
            && (!open_only || !i.state.is_final())
            && level.is_none_or(|l| i.level == l)
            && severity.is_none_or(|s| i.severity == s)
            && unit.is_none_or(|u| u.contains(i.unit) || u.contains(i.home))
            && q.department
                .as_deref()
                .filter(|d| !d.is_empty())
                .is_none_or(|d| i.department == d)
    };
    let pick = |book: &Book| {
        let mut list: Vec<&Incident> = book.incidents().filter(filter).collect();
        list.sort_by(|a, b| {
            (a.due_at.is_none(), a.due_at, &a.incident_id).cmp(&(
                b.due_at.is_none(),
                b.due_at,
                &b.incident_id,
            ))
        });
        Value::Array(list.into_iter().map(|i| incident_json(i, now)).collect())
    };
    let answer = match at {
        Some(t) => pick(&desk.book_at(t)),
        None => pick(&desk.book()),
    };
    Ok(Json(answer))
}

/// The incident, if it exists and the caller may see it.
fn visible(desk: &Desk, caller: &Caller, id: &str) -> ApiResult<Incident> {
    let book = desk.book();
    let inc = book
        .get(id)
        .ok_or_else(|| ApiError::NotFound(format!("no incident {id}")))?;
    if !inc.visible_to(caller.unit) {
        return Err(ApiError::Forbidden(format!(
            "incident {id} is outside unit {}'s jurisdiction",
            caller.unit
        )));
    }
    Ok(inc.clone())
}

async fn incident(
    State(desk): State<Arc<Desk>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let inc = visible(&desk, &caller, &id)?;
    let mut v = incident_json(&inc, desk.now());
    let events = desk.timeline(&id);
    let timeline: Vec<&crate::incident::IncidentEvent> = events.iter().map(|e| &**e).collect();
    v["timeline"] = serde_json::to_value(timeline).expect("events serialize");
    Ok(Json(v))
}

async fn cap(
    State(desk): State<Arc<Desk>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let inc = visible(&desk, &caller, &id)?;
    let timeline = desk.timeline(&id);
    let events: Vec<&crate::incident::IncidentEvent> = timeline.iter().map(|e| &**e).collect();
    let city = desk.context().jurisdictions.city();
    let messages = crate::cap::messages(city, &events, &inc, desk.config().exercise);
    let latest = messages
        .into_iter()
        .last()
        .ok_or_else(|| ApiError::NotFound(format!("incident {id} has no CAP message in memory")))?;
    Ok((
        [(header::CONTENT_TYPE, "application/cap+xml; charset=utf-8")],
        latest,
    )
        .into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    action: ActionKind,
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    due_at: Option<String>,
    #[serde(default)]
    to: Option<Code>,
}

async fn act(
    State(desk): State<Arc<Desk>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> ApiResult<Json<Value>> {
    // Who may see it is checked before the body, so a stranger learns nothing more from a
    // bad body than from a good one.
    visible(&desk, &caller, &id)?;
    let body: ActionBody =
        serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("body: {e}")))?;
    let due_at = body
        .due_at
        .as_deref()
        .map(|s| {
            parse_rfc3339(s)
                .ok_or_else(|| ApiError::BadRequest(format!("due_at `{s}`: not RFC 3339")))
        })
        .transpose()?;
    let action = Action {
        incident_id: id,
        action: body.action,
        unit: caller.unit,
        at: 0,
        comment: body.comment,
        due_at,
        to: body.to,
        action_id: None,
    };
    let result = desk
        .act(action)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let inc = result?;
    Ok(Json(incident_json(&inc, desk.now())))
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    after: Option<u64>,
    limit: Option<usize>,
}

async fn events(
    State(desk): State<Arc<Desk>>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<EventsQuery>,
) -> Json<Value> {
    let limit = q.limit.unwrap_or(1000).min(MAX_EVENTS);
    let book = desk.book();
    let keep = |e: &crate::incident::IncidentEvent| {
        caller.unit.contains(e.unit)
            || book
                .get(&e.incident_id)
                .is_some_and(|i| i.visible_to(caller.unit))
    };
    let list = desk.events_after(q.after.unwrap_or(0), limit, keep);
    let list: Vec<&crate::incident::IncidentEvent> = list.iter().map(|e| &**e).collect();
    Json(serde_json::to_value(list).expect("events serialize"))
}

async fn stream(
    State(desk): State<Arc<Desk>>,
    Extension(caller): Extension<Caller>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = desk.subscribe();
    let stream = futures::stream::unfold((rx, desk, caller), |(mut rx, desk, caller)| async move {
        loop {
            match rx.recv().await {
                Ok(StreamItem::Event(e)) => {
                    let visible = caller.unit.contains(e.unit)
                        || desk
                            .book()
                            .get(&e.incident_id)
                            .is_some_and(|i| i.visible_to(caller.unit));
                    if visible {
                        let data = serde_json::to_string(&*e).expect("events serialize");
                        let event = Event::default().event("incident").data(data);
                        return Some((Ok(event), (rx, desk, caller)));
                    }
                }
                Ok(StreamItem::Cells(doc)) => {
                    let data = doc.get("cells").map(Value::to_string).unwrap_or_default();
                    let event = Event::default().event("cells").data(data);
                    return Some((Ok(event), (rx, desk, caller)));
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    let event = Event::default()
                        .event("lagged")
                        .data(format!("{{\"missed\":{n}}}"));
                    return Some((Ok(event), (rx, desk, caller)));
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn cells(State(desk): State<Arc<Desk>>) -> Json<Value> {
    Json(desk.cells())
}

#[derive(Debug, Deserialize)]
struct IndicatorQuery {
    day: Option<String>,
}

async fn indicators(
    State(desk): State<Arc<Desk>>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<IndicatorQuery>,
) -> ApiResult<Json<Value>> {
    let ctx = desk.context();
    let day = match q.day.as_deref().filter(|s| !s.is_empty()) {
        Some(s) => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .map_err(|_| ApiError::BadRequest(format!("day `{s}`: not YYYY-MM-DD")))?,
        None => ctx.calendar.local_date(desk.now()),
    };
    let log = desk.log_snapshot();
    let events: Vec<&crate::incident::IncidentEvent> = log.iter().map(|e| &**e).collect();
    let rows = crate::report::indicators(&events, &ctx.jurisdictions, &ctx.calendar, Some(day));
    let rows: Vec<_> = rows
        .into_iter()
        .filter(|r| caller.unit.contains(r.unit))
        .collect();
    Ok(Json(serde_json::to_value(rows).expect("rows serialize")))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;
    use crate::access::{Access, demo_access_path};
    use crate::calendar::Calendar;
    use crate::desk::DeskConfig;
    use citybrain_connectors::SplitMix64;

    use crate::incident::{AlertIn, Context};
    use crate::jurisdiction::{Jurisdictions, Location, RoutingOptions, sample_city_path};
    use crate::policy::Policy;
    use crate::store::Outputs;
    use crate::time::parse_rfc3339;

    /// The demo token of a unit (see ops/data/demo-access.toml).
    fn token(unit: &str) -> String {
        match unit.trim_end_matches('0').len() {
            0..=4 => "demo-city".to_string(),
            5..=6 => format!("demo-district-{}", &unit[..6]),
            7..=9 => format!("demo-street-{}", &unit[..9]),
            _ => format!("demo-community-{unit}"),
        }
    }

    /// Whether `caller` is `unit` or above it, by the digits alone.
    fn covers(caller: &str, unit: &str) -> bool {
        let keep = match caller.trim_end_matches('0').len() {
            0..=4 => 4,
            5..=6 => 6,
            7..=9 => 9,
            _ => 12,
        };
        unit.starts_with(&caller[..keep])
    }

    async fn desk_with_incidents(n: usize) -> (Arc<Desk>, Vec<String>) {
        let j = Jurisdictions::load(&sample_city_path(), RoutingOptions::default()).expect("city");
        let access = Access::load(&demo_access_path(), &j).expect("access");
        let ctx = Context {
            jurisdictions: Arc::new(j),
            policy: Policy::default(),
            calendar: Calendar::default(),
            rules: HashMap::new(),
        };
        let desk = Desk::new(ctx, access, DeskConfig::default(), Outputs::new());
        let mut rng = SplitMix64::new(7);
        let at = parse_rfc3339("2026-03-02T08:00:00Z").expect("time");
        let alerts: Vec<AlertIn> = (0..n)
            .map(|i| AlertIn {
                alert_id: format!("a{i}"),
                rule: "police/incident_surge".into(),
                title: "Surge".into(),
                severity: if i % 5 == 0 {
                    Severity::Critical
                } else {
                    Severity::High
                },
                key: format!("k{i}"),
                at,
                revision: 1,
                // Mostly inside the city, some outside it (district and city queues).
                location: Location::from_point(
                    rng.range(30.17, 30.33),
                    rng.range(120.08, 120.26),
                    9,
                )
                .expect("point"),
                unit: None,
            })
            .collect();
        let done = desk
            .ingest(alerts, Vec::new(), Some(at))
            .await
            .expect("ingest");
        let ids = done.events.iter().map(|e| e.incident_id.clone()).collect();
        (desk, ids)
    }

    async fn call(
        router: &Router,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: &str,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        if !body.is_empty() {
            req = req.header("content-type", "application/json");
        }
        let response = router
            .clone()
            .oneshot(req.body(Body::from(body.to_string())).expect("request"))
            .await
            .expect("response");
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
            .await
            .expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }

    #[tokio::test]
    async fn callers_see_and_act_on_their_own_subtree_only() {
        let (desk, ids) = desk_with_incidents(300).await;
        let router = router(Arc::clone(&desk));
        let units: Vec<String> = desk
            .context()
            .jurisdictions
            .units()
            .map(|u| u.code.to_string())
            .collect();
        let mut rng = SplitMix64::new(42);
        let (mut allowed, mut refused) = (0, 0);
        let by_level: Vec<Vec<&String>> = ["city", "district", "street", "community"]
            .iter()
            .map(|l| {
                units
                    .iter()
                    .filter(|u| token(u).starts_with(&format!("demo-{l}")))
                    .collect()
            })
            .collect();
        for _ in 0..600 {
            // A level at random, then a unit of it: every level gets drawn often.
            let level = &by_level[rng.below(by_level.len())];
            let caller = level[rng.below(level.len())];
            let id = &ids[rng.below(ids.len())];
            let before = desk.book().get(id).cloned().expect("incident");
            let seq = desk.book().seq();
            let expected = covers(caller, &before.unit.to_string())
                || covers(caller, &before.home.to_string());
            let (status, body) = call(
                &router,
                "GET",
                &format!("/api/incidents/{id}"),
                Some(&token(caller)),
                "",
            )
            .await;
            let action = r#"{"action":"comment","comment":"seen"}"#;
            let (act_status, _) = call(
                &router,
                "POST",
                &format!("/api/incidents/{id}/actions"),
                Some(&token(caller)),
                action,
            )
            .await;
            if expected {
                allowed += 1;
                assert_eq!(status, StatusCode::OK, "{caller} on {id}: {body}");
                assert_eq!(body["incident_id"], Value::String(id.clone()));
                assert_eq!(act_status, StatusCode::OK, "{caller} comments on {id}");
            } else {
                refused += 1;
                assert_eq!(status, StatusCode::FORBIDDEN, "{caller} on {id}: {body}");
                assert_eq!(act_status, StatusCode::FORBIDDEN, "{caller} acts on {id}");
                assert_eq!(
                    desk.book().get(id),
                    Some(&before),
                    "a refused action changes nothing"
                );
                assert_eq!(desk.book().seq(), seq);
            }
        }
        assert!(
            allowed > 50 && refused > 50,
            "both outcomes drawn: {allowed} allowed, {refused} refused"
        );
        // Each caller's list is exactly the incidents of its subtree.
        for caller in [
            "330100000000",
            "330102000000",
            "330105002000",
            "330108003004",
        ] {
            let (status, list) = call(
                &router,
                "GET",
                "/api/incidents?state=all",
                Some(&token(caller)),
                "",
            )
            .await;
            assert_eq!(status, StatusCode::OK);
            let got: Vec<&str> = list
                .as_array()
                .expect("list")
                .iter()
                .filter_map(|i| i["incident_id"].as_str())
                .collect();
            let book = desk.book();
            let want = book
                .incidents()
                .filter(|i| {
                    covers(caller, &i.unit.to_string()) || covers(caller, &i.home.to_string())
                })
                .count();
            assert_eq!(got.len(), want, "{caller}");
            let dues: Vec<&str> = list
                .as_array()
                .expect("list")
                .iter()
                .filter_map(|i| i["due_at"].as_str())
                .collect();
            assert!(dues.windows(2).all(|w| w[0] <= w[1]), "sorted by due_at");
        }
    }

    #[tokio::test]
    async fn no_token_or_a_wrong_one_gets_401_and_changes_nothing() {
        let (desk, ids) = desk_with_incidents(5).await;
        let router = router(Arc::clone(&desk));
        let seq = desk.book().seq();
        for token in [None, Some("demo-cityy"), Some("")] {
            for (method, uri) in [
                ("GET", "/api/me".to_string()),
                ("GET", "/api/incidents".to_string()),
                ("POST", format!("/api/incidents/{}/actions", ids[0])),
            ] {
                let (status, _) = call(&router, method, &uri, token, r#"{"action":"void"}"#).await;
                assert_eq!(
                    status,
                    StatusCode::UNAUTHORIZED,
                    "{method} {uri} with {token:?}"
                );
            }
        }
        assert_eq!(desk.book().seq(), seq);
        let (status, me) = call(&router, "GET", "/api/me", Some("demo-street-330102001"), "").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            me,
            json!({"unit": "330102001000", "name": "湖滨街道", "level": "street"})
        );
    }

    #[tokio::test]
    async fn bad_actions_are_400_with_nothing_changed_and_good_ones_answer_the_incident() {
        let (desk, ids) = desk_with_incidents(40).await;
        let router = router(Arc::clone(&desk));
        let city = "demo-city";
        let id = &ids[1];
        let seq = desk.book().seq();
        for body in [
            "not json",
            r#"{"action":"fly"}"#,
            r#"{"action":"handled"}"#,
            r#"{"action":"extend"}"#,
            r#"{"action":"extend","due_at":"yesterday"}"#,
            r#"{"action":"comment"}"#,
            r#"{"action":"ack","extra":1}"#,
        ] {
            let (status, err) = call(
                &router,
                "POST",
                &format!("/api/incidents/{id}/actions"),
                Some(city),
                body,
            )
            .await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {err}");
            assert!(
                err["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{err}"
            );
        }
        assert_eq!(desk.book().seq(), seq, "nothing changed");
        let (status, _) = call(
            &router,
            "POST",
            "/api/incidents/nope/actions",
            Some(city),
            r#"{"action":"ack"}"#,
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, inc) = call(
            &router,
            "POST",
            &format!("/api/incidents/{id}/actions"),
            Some(city),
            r#"{"action":"ack"}"#,
        )
        .await;
        assert_eq!(
            (status, inc["state"].as_str()),
            (StatusCode::OK, Some("acknowledged"))
        );
        let (status, inc) = call(
            &router,
            "GET",
            &format!("/api/incidents/{id}"),
            Some(city),
            "",
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let types: Vec<&str> = inc["timeline"]
            .as_array()
            .expect("timeline")
            .iter()
            .filter_map(|e| e["type"].as_str())
            .collect();
        assert_eq!(types, ["opened", "acknowledged"]);
        let (_, events) = call(
            &router,
            "GET",
            &format!("/api/events?after={seq}"),
            Some(city),
            "",
        )
        .await;
        assert_eq!(events.as_array().map(Vec::len), Some(1));
        let (status, _) = call(&router, "GET", "/api/nowhere", Some(city), "").await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn units_jurisdictions_cells_and_time_travel() {
        let (desk, ids) = desk_with_incidents(20).await;
        let router = router(Arc::clone(&desk));
        let (_, units) = call(
            &router,
            "GET",
            "/api/units",
            Some("demo-street-330102001"),
            "",
        )
        .await;
        assert_eq!(
            units.as_array().map(Vec::len),
            Some(5),
            "a street and its 4 communities"
        );
        let (_, geo) = call(
            &router,
            "GET",
            "/api/jurisdictions",
            Some("demo-district-330102"),
            "",
        )
        .await;
        let features = geo["features"].as_array().expect("features");
        assert_eq!(features.len(), 12);
        assert_eq!(features[0]["properties"]["district"], json!("330102000000"));
        let (_, cells) = call(&router, "GET", "/api/cells", Some("demo-city"), "").await;
        let total: u64 = cells["cells"]
            .as_array()
            .expect("cells")
            .iter()
            .filter_map(|c| c["value"].as_u64())
            .sum();
        assert_eq!(total, 20);
        // Half an hour later, void one, then look at the desk as it stood before.
        let later = parse_rfc3339("2026-03-02T08:30:00Z").expect("time");
        desk.ingest(Vec::new(), Vec::new(), Some(later))
            .await
            .expect("clock");
        let (status, _) = call(
            &router,
            "POST",
            &format!("/api/incidents/{}/actions", ids[0]),
            Some("demo-city"),
            r#"{"action":"void"}"#,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let (_, now) = call(
            &router,
            "GET",
            "/api/incidents?state=open",
            Some("demo-city"),
            "",
        )
        .await;
        assert_eq!(now.as_array().map(Vec::len), Some(19));
        let (_, then) = call(
            &router,
            "GET",
            "/api/incidents?state=open&at=2026-03-02T08:00:00Z",
            Some("demo-city"),
            "",
        )
        .await;
        assert_eq!(then.as_array().map(Vec::len), Some(20));
        let (status, _) = call(
            &router,
            "GET",
            "/api/incidents?unit=330105000000",
            Some("demo-district-330102"),
            "",
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "a sibling district's filter");
    }
}
