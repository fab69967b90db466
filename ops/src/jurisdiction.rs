//! Jurisdictions: the city's communities from a GeoJSON file, every H3 cell of the incident
//! resolution mapped to exactly one of them, and routing of a place to its unit.
//!
//! ```text
//!  GeoJSON FeatureCollection ──load──▶ Jurisdictions ──route(Location)──▶ Routed { unit, placement }
//!   community polygons,                 units (communities + parents from the code prefixes)
//!   properties code, name               cells: H3 cell (centroid inside) → community
//! ```
//!
//! A place is routed by the H3 cell at the incident resolution that holds it: the cell's
//! centroid lies in exactly one community (communities tile without overlap; a cell claimed by
//! two is a load error). A place outside every community goes to the queue of the district
//! whose community is nearest when that is within the outside distance, else to the city's;
//! it is never dropped.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use geo::{Contains, Coord, LineString, Point, Polygon};
use h3o::geom::{ContainmentMode, TilerBuilder};
use h3o::{CellIndex, LatLng, Resolution};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{Error, Result, line_of, read_text};
use crate::unit::{Code, Level};

/// Default H3 resolution at which places are routed (about 0.1 km² a cell, finer than any
/// community).
pub const DEFAULT_RESOLUTION: u8 = 9;
/// Default distance beyond the last community within which a place still goes to the nearest
/// district's queue rather than the city's, metres.
pub const DEFAULT_OUTSIDE_MAX_M: f64 = 3000.0;

/// Where something is: an H3 cell, a point, or both.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Location {
    /// The H3 cell (15-character hex), at whatever resolution the rule gave.
    pub cell: Option<String>,
    /// Latitude, WGS84 degrees.
    pub lat: Option<f64>,
    /// Longitude, WGS84 degrees.
    pub lon: Option<f64>,
}

impl Location {
    /// Nowhere: the alert's rule says no place.
    pub fn none() -> Self {
        Self::default()
    }

    /// A cell, with its centroid as the point. `None` when `cell` is not an H3 cell index.
    pub fn from_cell(cell: &str) -> Option<Self> {
        let index: CellIndex = cell.trim().parse().ok()?;
        let centre = LatLng::from(index);
        Some(Self {
            cell: Some(index.to_string()),
            lat: Some(round6(centre.lat())),
            lon: Some(round6(centre.lng())),
        })
    }

    /// A cell given as its 64-bit index.
    pub fn from_cell_u64(cell: u64) -> Option<Self> {
        let index = CellIndex::try_from(cell).ok()?;
        Self::from_cell(&index.to_string())
    }

    /// A point, with the cell at `resolution` holding it. `None` for coordinates off the globe.
    pub fn from_point(lat: f64, lon: f64, resolution: u8) -> Option<Self> {
        let ll = LatLng::new(lat, lon).ok()?;
        let res = Resolution::try_from(resolution).ok()?;
        Some(Self {
            cell: Some(ll.to_cell(res).to_string()),
            lat: Some(round6(lat)),
            lon: Some(round6(lon)),
        })
    }

    /// Whether it says no place at all.
    pub fn is_none(&self) -> bool {
        self.cell.is_none() && (self.lat.is_none() || self.lon.is_none())
    }

    /// The point (the cell's centroid when only a cell is known).
    pub fn point(&self) -> Option<(f64, f64)> {
        match (self.lat, self.lon, &self.cell) {
            (Some(lat), Some(lon), _) => Some((lat, lon)),
            (_, _, Some(cell)) => {
                let c: CellIndex = cell.parse().ok()?;
                let ll = LatLng::from(c);
                Some((ll.lat(), ll.lng()))
            }
            _ => None,
        }
    }

    /// The cell's boundary as (lat, lon) pairs, closed (first = last); `None` without a cell.
    pub fn cell_polygon(&self) -> Option<Vec<(f64, f64)>> {
        let c: CellIndex = self.cell.as_deref()?.parse().ok()?;
        let mut ring: Vec<(f64, f64)> = c.boundary().iter().map(|p| (p.lat(), p.lng())).collect();
        if let Some(first) = ring.first().copied() {
            ring.push(first);
        }
        Some(ring)
    }
}

fn round6(v: f64) -> f64 {
    (v * 1e6).round() / 1e6
}

/// A unit of the chain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Unit {
    /// 12-digit code.
    pub code: Code,
    /// Its name.
    pub name: String,
    /// Its level.
    pub level: Level,
    /// The unit above, `None` for the city.
    pub parent: Option<Code>,
}

/// How a place found its unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Placement {
    /// Inside a community (by the centroid of its cell).
    Inside,
    /// Outside every community, this far (metres) from the nearest: its district's queue.
    NearestDistrict { distance_m: f64 },
    /// Too far from every community, or no place at all: the city's queue.
    CityQueue,
}

/// A place's unit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Routed {
    /// The community, a district (its queue) or the city (its queue).
    pub unit: Code,
    /// How.
    pub placement: Placement,
}

struct Community {
    code: Code,
    polygons: Vec<Polygon<f64>>,
    /// The same in metres east and north of the city's reference point.
    local: Vec<Vec<(f64, f64)>>,
    /// GeoJSON geometry as read.
    geometry: Value,
}

/// The city's units and where each community is.
pub struct Jurisdictions {
    path: PathBuf,
    resolution: Resolution,
    outside_max_m: f64,
    city: Code,
    units: BTreeMap<Code, Unit>,
    communities: Vec<Community>,
    cells: HashMap<CellIndex, u32>,
    /// Reference point of the local metric projection.
    origin: (f64, f64),
}

impl std::fmt::Debug for Jurisdictions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jurisdictions")
            .field("path", &self.path)
            .field("city", &self.city)
            .field("units", &self.units.len())
            .field("cells", &self.cells.len())
            .finish_non_exhaustive()
    }
}

/// Settings of routing (the `[routing]` table of the policy file).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RoutingOptions {
    /// H3 resolution of the cell a place is routed by (0-15). Default 9.
    pub resolution: u8,
    /// A place outside every community but within this many metres of one goes to that
    /// community's district queue; further away to the city's. Default 3,000.
    pub outside_max_m: f64,
}

impl Default for RoutingOptions {
    fn default() -> Self {
        Self {
            resolution: DEFAULT_RESOLUTION,
            outside_max_m: DEFAULT_OUTSIDE_MAX_M,
        }
    }
}

#[derive(Deserialize)]
struct Collection {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    features: Vec<Value>,
}

impl Jurisdictions {
    /// Reads and checks a GeoJSON FeatureCollection of community polygons.
    ///
    /// # Errors
    /// [`Error::Read`], or [`Error::Invalid`] with every problem of the file (not GeoJSON, a
    /// code that is not a 12-digit community code, duplicate codes, communities of several
    /// cities, a bad polygon, two communities claiming one cell, ...), each naming the file,
    /// the line of the feature and the field.
    pub fn load(path: &Path, options: RoutingOptions) -> Result<Self> {
        let text = read_text(path)?;
        Self::from_geojson(path, &text, options)
    }

    /// Like [`Jurisdictions::load`], from text (`path` names it in messages).
    ///
    /// # Errors
    /// As [`Jurisdictions::load`].
    pub fn from_geojson(path: &Path, text: &str, options: RoutingOptions) -> Result<Self> {
        let file = path.display().to_string();
        let invalid = |problems: Vec<String>| Error::Invalid { problems };
        let collection: Collection = serde_json::from_str(text).map_err(|e| {
            invalid(vec![format!(
                "{file}:{}: not a GeoJSON FeatureCollection: {e}",
                e.line()
            )])
        })?;
        let mut problems = Vec::new();
        if collection.kind != "FeatureCollection" {
            problems.push(format!(
                "{file}:1: type: `{}` (expected FeatureCollection)",
                collection.kind
            ));
        }
        let Ok(resolution) = Resolution::try_from(options.resolution) else {
            return Err(invalid(vec![format!(
                "routing.resolution: {} is not an H3 resolution (0-15)",
                options.resolution
            )]));
        };
        // Where each feature starts, for line numbers: the n-th `"Feature"` in the text.
        let starts: Vec<usize> = text.match_indices("\"Feature\"").map(|(i, _)| i).collect();
        let mut names: BTreeMap<Code, (String, usize)> = BTreeMap::new();
        let mut parent_names: BTreeMap<Code, String> = BTreeMap::new();
        let mut communities = Vec::new();
        let mut city: Option<Code> = None;
        for (n, feature) in collection.features.iter().enumerate() {
            let line = starts.get(n).map_or(1, |o| line_of(text, *o));
            let at = format!("{file}:{line}: features[{n}]");
            let props = feature.get("properties").and_then(Value::as_object);
            let code_text = props
                .and_then(|p| p.get("code"))
                .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string));
            let Some(code_text) = code_text else {
                problems.push(format!("{at}: properties.code: missing (12 digits)"));
                continue;
            };
            let Some(code) = Code::parse(&code_text) else {
                problems.push(format!(
                    "{at}: properties.code: `{code_text}` is not 12 digits"
                ));
                continue;
            };
            let at = format!("{file}:{line}: features[{n}] ({code})");
            if code.level() != Level::Community {
                problems.push(format!(
                    "{at}: properties.code: a {} code (its last 3 digits are zero); features are communities",
                    code.level()
                ));
                continue;
            }
            let this_city = code.at(Level::City);
            match city {
                None => city = Some(this_city),
                Some(c) if c != this_city => problems.push(format!(
                    "{at}: properties.code: city {this_city} differs from the first feature's {c}"
                )),
                Some(_) => {}
            }
            let name = props
                .and_then(|p| p.get("name"))
                .and_then(Value::as_str)
                .map(str::trim)
                .unwrap_or_default();
            if name.is_empty() {
                problems.push(format!("{at}: properties.name: missing"));
            }
            if let Some((_, first)) = names.get(&code) {
                problems.push(format!(
                    "{at}: properties.code: duplicate (first at line {first})"
                ));
                continue;
            }
            names.insert(code, (name.to_string(), line));
            for (level, key) in [
                (Level::Street, "street_name"),
                (Level::District, "district_name"),
                (Level::City, "city_name"),
            ] {
                if let Some(v) = props.and_then(|p| p.get(key)).and_then(Value::as_str) {
                    let parent = code.at(level);
                    match parent_names.get(&parent) {
                        Some(old) if old != v => problems.push(format!(
                            "{at}: properties.{key}: `{v}` but an earlier feature names {parent} `{old}`"
                        )),
                        _ => {
                            parent_names.insert(parent, v.to_string());
                        }
                    }
                }
            }
            let geometry = feature.get("geometry").cloned().unwrap_or(Value::Null);
            match polygons(&geometry) {
                Ok(polygons) => communities.push(Community {
                    code,
                    polygons,
                    local: Vec::new(),
                    geometry,
                }),
                Err(e) => problems.push(format!("{at}: geometry: {e}")),
            }
        }
        let Some(city) = city else {
            problems.push(format!("{file}: no community features"));
            return Err(invalid(problems));
        };
        // Tile each community: the cells whose centroid it contains.
        let mut cells: HashMap<CellIndex, u32> = HashMap::new();
        let mut overlaps = 0;
        for (i, community) in communities.iter().enumerate() {
            let mut tiler = TilerBuilder::new(resolution)
                .containment_mode(ContainmentMode::ContainsCentroid)
                .build();
            for p in &community.polygons {
                if let Err(e) = tiler.add(p.clone()) {
                    problems.push(format!("{file}: {}: geometry: {e}", community.code));
                }
            }
            for cell in tiler.into_coverage() {
                if let Some(other) = cells.insert(cell, i as u32) {
                    overlaps += 1;
                    if overlaps <= 5 {
                        problems.push(format!(
                            "{file}: communities {} and {} overlap: both hold the centroid of cell {cell}",
                            communities[other as usize].code, community.code
                        ));
                    }
                }
            }
        }
        if overlaps > 5 {
            problems.push(format!(
                "{file}: {} more cells claimed by two communities",
                overlaps - 5
            ));
        }
        if !problems.is_empty() {
            return Err(invalid(problems));
        }
        let mut units = BTreeMap::new();
        for (code, (name, _)) in names {
            let mut child = code;
            units.insert(
                code,
                Unit {
                    code,
                    name,
                    level: Level::Community,
                    parent: code.parent(),
                },
            );
            while let Some(parent) = child.parent() {
                units.entry(parent).or_insert_with(|| Unit {
                    code: parent,
                    name: parent_names
                        .get(&parent)
                        .cloned()
                        .unwrap_or_else(|| format!("{} {parent}", parent.level())),
                    level: parent.level(),
                    parent: parent.parent(),
                });
                child = parent;
            }
        }
        let (mut lat_sum, mut lon_sum, mut n) = (0.0, 0.0, 0.0);
        for c in &communities {
            for p in &c.polygons {
                for q in p.exterior().coords() {
                    lat_sum += q.y;
                    lon_sum += q.x;
                    n += 1.0;
                }
            }
        }
        let origin = (lat_sum / n, lon_sum / n);
        for c in &mut communities {
            c.local = c
                .polygons
                .iter()
                .map(|p| {
                    p.exterior()
                        .coords()
                        .map(|q| local(origin, q.y, q.x))
                        .collect()
                })
                .collect();
        }
        Ok(Self {
            path: path.to_path_buf(),
            resolution,
            outside_max_m: options.outside_max_m,
            city,
            units,
            communities,
            cells,
            origin,
        })
    }

    /// The file it was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The city's code.
    pub fn city(&self) -> Code {
        self.city
    }

    /// The resolution places are routed at.
    pub fn resolution(&self) -> u8 {
        u8::from(self.resolution)
    }

    /// Every unit, by code.
    pub fn units(&self) -> impl Iterator<Item = &Unit> {
        self.units.values()
    }

    /// One unit.
    pub fn unit(&self, code: Code) -> Option<&Unit> {
        self.units.get(&code)
    }

    /// The unit's name, or its code when unknown.
    pub fn name(&self, code: Code) -> String {
        self.units
            .get(&code)
            .map_or_else(|| code.to_string(), |u| u.name.clone())
    }

    /// How many cells of the routing resolution belong to a community.
    pub fn cell_count(&self) -> usize {
        self.cells.len()
    }

    /// The community holding `cell`'s centroid, when `cell` is at the routing resolution.
    pub fn community_of_cell(&self, cell: CellIndex) -> Option<Code> {
        self.cells
            .get(&cell)
            .map(|i| self.communities[*i as usize].code)
    }

    /// The community whose polygon contains the point, by geometry alone (no cells): the
    /// oracle the cell map is tested against.
    pub fn community_containing(&self, lat: f64, lon: f64) -> Vec<Code> {
        let p = Point::new(lon, lat);
        self.communities
            .iter()
            .filter(|c| c.polygons.iter().any(|poly| poly.contains(&p)))
            .map(|c| c.code)
            .collect()
    }

    /// The unit a place belongs to.
    pub fn route(&self, location: &Location) -> Routed {
        let city = Routed {
            unit: self.city,
            placement: Placement::CityQueue,
        };
        let Some((lat, lon)) = location.point() else {
            return city;
        };
        let Ok(ll) = LatLng::new(lat, lon) else {
            return city;
        };
        if let Some(code) = self.community_of_cell(ll.to_cell(self.resolution)) {
            return Routed {
                unit: code,
                placement: Placement::Inside,
            };
        }
        let here = local(self.origin, lat, lon);
        let nearest = self
            .communities
            .iter()
            .map(|c| {
                let d = c
                    .local
                    .iter()
                    .map(|ring| ring_distance(here, ring))
                    .fold(f64::INFINITY, f64::min);
                (d, c.code)
            })
            .min_by(|a, b| a.0.total_cmp(&b.0));
        match nearest {
            Some((d, code)) if d <= self.outside_max_m => Routed {
                unit: code.at(Level::District),
                placement: Placement::NearestDistrict { distance_m: d },
            },
            _ => city,
        }
    }

    /// The units `caller` may see: itself and everything below it.
    pub fn subtree(&self, caller: Code) -> impl Iterator<Item = &Unit> {
        self.units.values().filter(move |u| caller.contains(u.code))
    }

    /// The communities below `caller` as a GeoJSON FeatureCollection (properties `code`,
    /// `name`, `street`, `district` (codes), `street_name`, `district_name`).
    pub fn geojson(&self, caller: Code) -> Value {
        let features: Vec<Value> = self
            .communities
            .iter()
            .filter(|c| caller.contains(c.code))
            .map(|c| {
                let street = c.code.at(Level::Street);
                let district = c.code.at(Level::District);
                json!({
                    "type": "Feature",
                    "properties": {
                        "code": c.code,
                        "name": self.name(c.code),
                        "street": street,
                        "district": district,
                        "street_name": self.name(street),
                        "district_name": self.name(district),
                    },
                    "geometry": c.geometry,
                })
            })
            .collect();
        json!({"type": "FeatureCollection", "features": features})
    }
}

/// Metres east and north of `origin` (an equirectangular projection: fine within a city).
fn local(origin: (f64, f64), lat: f64, lon: f64) -> (f64, f64) {
    const M_PER_DEG: f64 = 111_195.0;
    (
        (lon - origin.1) * M_PER_DEG * origin.0.to_radians().cos(),
        (lat - origin.0) * M_PER_DEG,
    )
}

/// Distance from `p` to the nearest edge of `ring`, metres.
fn ring_distance(p: (f64, f64), ring: &[(f64, f64)]) -> f64 {
    ring.windows(2)
        .map(|w| segment_distance(p, w[0], w[1]))
        .fold(f64::INFINITY, f64::min)
}

fn segment_distance(p: (f64, f64), a: (f64, f64), b: (f64, f64)) -> f64 {
    let (dx, dy) = (b.0 - a.0, b.1 - a.1);
    let len2 = dx * dx + dy * dy;
    let t = if len2 == 0.0 {
        0.0
    } else {
        (((p.0 - a.0) * dx + (p.1 - a.1) * dy) / len2).clamp(0.0, 1.0)
    };
    let (x, y) = (a.0 + t * dx, a.1 + t * dy);
    ((p.0 - x).powi(2) + (p.1 - y).powi(2)).sqrt()
}

/// The polygons of a GeoJSON Polygon or MultiPolygon geometry.
fn polygons(geometry: &Value) -> std::result::Result<Vec<Polygon<f64>>, String> {
    let kind = geometry.get("type").and_then(Value::as_str).unwrap_or("");
    let coords = geometry.get("coordinates").ok_or("no coordinates")?;
    let polys: Vec<&Value> = match kind {
        "Polygon" => vec![coords],
        "MultiPolygon" => coords
            .as_array()
            .ok_or("coordinates: not an array")?
            .iter()
            .collect(),
        other => return Err(format!("type `{other}` (expected Polygon or MultiPolygon)")),
    };
    let mut out = Vec::new();
    for poly in polys {
        let rings = poly
            .as_array()
            .ok_or("coordinates: not an array of rings")?;
        let mut read: Vec<LineString<f64>> = Vec::new();
        for (r, ring) in rings.iter().enumerate() {
            let points = ring
                .as_array()
                .ok_or_else(|| format!("ring {r}: not an array of positions"))?;
            let mut line = Vec::with_capacity(points.len());
            for (i, p) in points.iter().enumerate() {
                let xy = p.as_array().filter(|a| a.len() >= 2);
                let (Some(lon), Some(lat)) = (
                    xy.and_then(|a| a[0].as_f64()),
                    xy.and_then(|a| a[1].as_f64()),
                ) else {
                    return Err(format!("ring {r} position {i}: not [lon, lat]"));
                };
                if !(-180.0..=180.0).contains(&lon) || !(-90.0..=90.0).contains(&lat) {
                    return Err(format!(
                        "ring {r} position {i}: [{lon}, {lat}] is off the globe (GeoJSON is [lon, lat])"
                    ));
                }
                line.push(Coord { x: lon, y: lat });
            }
            if line.len() < 4 || line.first() != line.last() {
                return Err(format!(
                    "ring {r}: a ring needs at least 4 positions, the last equal to the first"
                ));
            }
            read.push(LineString::new(line));
        }
        let mut rings = read.into_iter();
        let exterior = rings.next().ok_or("a polygon without rings")?;
        out.push(Polygon::new(exterior, rings.collect()));
    }
    if out.is_empty() {
        return Err("no polygons".into());
    }
    Ok(out)
}

/// The sample city shipped with citybrain (`ops/data/sample-city.geojson`): 4 districts, 12
/// streets, 48 communities covering the simulator's city.
pub fn sample_city_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/sample-city.geojson")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Jurisdictions {
        Jurisdictions::load(&sample_city_path(), RoutingOptions::default()).expect("sample city")
    }

    #[test]
    fn the_sample_city_has_four_districts_twelve_streets_forty_eight_communities() {
        let j = sample();
        let count = |l: Level| j.units().filter(|u| u.level == l).count();
        assert_eq!(count(Level::City), 1);
        assert_eq!(count(Level::District), 4);
        assert_eq!(count(Level::Street), 12);
        assert_eq!(count(Level::Community), 48);
        assert_eq!(j.city().to_string(), "330100000000");
        assert_eq!(j.name("330102001000".parse().expect("code")), "湖滨街道");
    }

    #[test]
    fn every_cell_of_the_city_maps_to_the_one_community_holding_its_centroid() {
        let j = sample();
        // Every cell touching the city's bounding box, a little beyond it.
        let bbox = Polygon::new(
            LineString::from(vec![
                (120.09, 30.18),
                (120.25, 30.18),
                (120.25, 30.32),
                (120.09, 30.32),
                (120.09, 30.18),
            ]),
            vec![],
        );
        let mut tiler = TilerBuilder::new(Resolution::Nine)
            .containment_mode(ContainmentMode::Covers)
            .build();
        tiler.add(bbox).expect("bbox");
        let (mut inside, mut outside) = (0, 0);
        let mut per_community: BTreeMap<Code, usize> = BTreeMap::new();
        for cell in tiler.into_coverage() {
            let c = LatLng::from(cell);
            let holders = j.community_containing(c.lat(), c.lng());
            assert!(holders.len() <= 1, "cell {cell}: centroid in {holders:?}");
            assert_eq!(
                j.community_of_cell(cell),
                holders.first().copied(),
                "cell {cell}"
            );
            match holders.first() {
                Some(code) => {
                    inside += 1;
                    *per_community.entry(*code).or_default() += 1;
                }
                None => outside += 1,
            }
        }
        assert_eq!(inside, j.cell_count(), "every mapped cell was visited");
        assert!(outside > 0, "the box reaches beyond the city");
        assert_eq!(per_community.len(), 48, "every community holds cells");
    }

    #[test]
    fn hand_checked_points_route_to_their_communities_and_outside_is_queued() {
        let j = sample();
        // The middle of a cell of the sample's 8 x 6 layout (columns of 0.0175° from 120.10
        // east, rows of 0.02° from 30.31 south): far from any (jittered) border.
        for (lat, lon, code) in [
            (30.30, 120.10875, "330106001001"), // row 0, column 0: 西湖区 北山街道 first
            (30.26, 120.16125, "330106003004"), // row 2, column 3
            (30.24, 120.17875, "330108001001"), // row 3, column 4: 滨江区
            (30.20, 120.23125, "330108003004"), // row 5, column 7: the south-east corner
            (30.28, 120.19625, "330105002002"), // row 1, column 5: 拱墅区
            (30.22, 120.12625, "330102002002"), // row 4, column 1: 上城区
        ] {
            let here = Location::from_point(lat, lon, DEFAULT_RESOLUTION).expect("point");
            let routed = j.route(&here);
            assert_eq!(routed.unit.to_string(), code, "({lat}, {lon})");
            assert_eq!(routed.placement, Placement::Inside);
            let coarse = Location::from_cell(
                &LatLng::new(lat, lon)
                    .expect("ll")
                    .to_cell(Resolution::Eight)
                    .to_string(),
            )
            .expect("cell");
            assert_eq!(
                j.route(&coarse).unit.to_string(),
                code,
                "a coarser cell routes by its centroid"
            );
        }
        // 1 km south of the city: the nearest community's district queue, not dropped.
        let near = j.route(&Location::from_point(30.181, 120.23, 9).expect("point"));
        assert_eq!(near.unit.to_string(), "330108000000");
        assert!(
            matches!(near.placement, Placement::NearestDistrict { distance_m } if (900.0..1100.0).contains(&distance_m))
        );
        // Shanghai, or nowhere at all: the city's queue.
        let far = j.route(&Location::from_point(31.23, 121.47, 9).expect("point"));
        assert_eq!(
            (far.unit.to_string(), far.placement),
            ("330100000000".into(), Placement::CityQueue)
        );
        assert_eq!(j.route(&Location::none()).unit, j.city());
    }

    #[test]
    fn problems_are_all_reported_with_lines() {
        let text = r#"{"type": "FeatureCollection", "features": [
  {"type": "Feature", "properties": {"code": "33010200100", "name": "a"}, "geometry": null},
  {"type": "Feature", "properties": {"code": "330102001000", "name": "b"}, "geometry": null},
  {"type": "Feature", "properties": {"code": "330102001001"}, "geometry": {"type": "Polygon", "coordinates": [[[120.1, 30.2], [120.2, 30.2], [120.1, 30.2]]]}},
  {"type": "Feature", "properties": {"code": "330202001001", "name": "d"}, "geometry": {"type": "Point", "coordinates": [120.1, 30.2]}}
]}"#;
        let Err(Error::Invalid { problems }) =
            Jurisdictions::from_geojson(Path::new("city.geojson"), text, RoutingOptions::default())
        else {
            panic!("invalid file accepted");
        };
        let expect = [
            "city.geojson:2: features[0]: properties.code: `33010200100` is not 12 digits",
            "city.geojson:3: features[1] (330102001000): properties.code: a street code",
            "city.geojson:4: features[2] (330102001001): properties.name: missing",
            "city.geojson:4: features[2] (330102001001): geometry: ring 0: a ring needs at least 4",
            "city.geojson:5: features[3] (330202001001): properties.code: city 330200000000 differs",
            "city.geojson:5: features[3] (330202001001): geometry: type `Point`",
        ];
        for e in expect {
            assert!(
                problems.iter().any(|p| p.starts_with(e)),
                "missing {e:?} in {problems:#?}"
            );
        }
        assert_eq!(problems.len(), expect.len(), "{problems:#?}");
    }

    #[test]
    fn overlapping_communities_are_refused() {
        let square = |code: &str, x0: f64| {
            format!(
                r#"{{"type": "Feature", "properties": {{"code": "{code}", "name": "n"}}, "geometry": {{"type": "Polygon", "coordinates": [[[{x0}, 30.2], [{x1}, 30.2], [{x1}, 30.22], [{x0}, 30.22], [{x0}, 30.2]]]}}}}"#,
                x1 = x0 + 0.02
            )
        };
        let text = format!(
            r#"{{"type": "FeatureCollection", "features": [{}, {}]}}"#,
            square("330102001001", 120.10),
            square("330102001002", 120.11)
        );
        let Err(Error::Invalid { problems }) =
            Jurisdictions::from_geojson(Path::new("c.geojson"), &text, RoutingOptions::default())
        else {
            panic!("overlap accepted");
        };
        assert!(
            problems[0].contains("communities 330102001001 and 330102001002 overlap"),
            "{problems:#?}"
        );
    }
}
