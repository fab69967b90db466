#!/usr/bin/env python3
"""Writes ops/data/sample-city.geojson: the jurisdictions of the simulated city.

The simulator's city (connectors/src/source/simulator.rs) is centred on (30.25, 120.17) and
spans about 10 km each way. This sample covers lat 30.19..30.31 and lon 120.10..120.24 with
48 communities laid out as 8 columns by 6 rows of quadrilaterals whose inner corners are moved
by up to 20 % of the spacing (a fixed seed), so borders are not grid-aligned yet every corner
is shared by its neighbours and the communities tile the city without gaps or overlaps.

Districts are the four quadrants (4 columns x 3 rows each); a street is one row of a district
(4 communities, west to east); codes follow the 12-digit administrative shape: city 3301,
district 3301xx, street 3301xxSSS, community 3301xxSSSCCC.

Run it from the repository root: python3 ops/data/make_sample_city.py
"""
import json
import random

LAT_N, LAT_S = 30.31, 30.19
LON_W, LON_E = 120.10, 120.24
COLS, ROWS = 8, 6
JITTER = 0.2

DISTRICTS = {  # (west/east half, north/south half) -> (code, name)
    (0, 0): ("330106", "西湖区"),
    (1, 0): ("330105", "拱墅区"),
    (0, 1): ("330102", "上城区"),
    (1, 1): ("330108", "滨江区"),
}
STREETS = {
    "330106": ["北山", "西溪", "翠苑"],
    "330105": ["米市巷", "湖墅", "小河"],
    "330102": ["湖滨", "清波", "望江"],
    "330108": ["西兴", "长河", "浦沿"],
}
NUMERALS = ["一", "二", "三", "四"]


def main():
    rng = random.Random(13)
    dlat = (LAT_N - LAT_S) / ROWS
    dlon = (LON_E - LON_W) / COLS
    corners = {}
    for r in range(ROWS + 1):
        for c in range(COLS + 1):
            lat = LAT_N - r * dlat
            lon = LON_W + c * dlon
            if 0 < r < ROWS and 0 < c < COLS:
                lat += rng.uniform(-JITTER, JITTER) * dlat
                lon += rng.uniform(-JITTER, JITTER) * dlon
            corners[(r, c)] = (round(lon, 6), round(lat, 6))
    features = []
    for r in range(ROWS):
        for c in range(COLS):
            code, district = DISTRICTS[(c // 4, r // 3)]
            street_no = r % 3
            street_code = f"{code}{street_no + 1:03d}"
            stem = STREETS[code][street_no]
            community_code = f"{street_code}{c % 4 + 1:03d}"
            ring = [corners[(r, c)], corners[(r, c + 1)], corners[(r + 1, c + 1)],
                    corners[(r + 1, c)], corners[(r, c)]]
            # GeoJSON exterior rings run counter-clockwise: west-north, west-south, ...
            ring.reverse()
            features.append({
                "type": "Feature",
                "properties": {
                    "code": community_code,
                    "name": f"{stem}{NUMERALS[c % 4]}社区",
                    "street_name": f"{stem}街道",
                    "district_name": district,
                    "city_name": "杭州市",
                },
                "geometry": {"type": "Polygon", "coordinates": [[list(p) for p in ring]]},
            })
    collection = {
        "type": "FeatureCollection",
        "name": "citybrain sample city: 4 districts, 12 streets, 48 communities",
        "features": features,
    }
    # One feature a line: small diffs, still readable.
    with open("ops/data/sample-city.geojson", "w", encoding="utf-8") as f:
        f.write('{"type": "FeatureCollection",\n "name": %s,\n "features": [\n'
                % json.dumps(collection["name"], ensure_ascii=False))
        f.write(",\n".join("  " + json.dumps(x, ensure_ascii=False) for x in features))
        f.write("\n ]\n}\n")


if __name__ == "__main__":
    main()
