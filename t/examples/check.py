#!/usr/bin/env python3
"""Checks for t/8004-examples.bats.

check.py answers OUT ID...
    the lines of OUT that are JSON objects holding a finish are the answers:
    one per ID, no other id, finish stop or length, text a string
check.py dashboard DASHBOARD.json
    the Grafana dashboard's shape; prints every sluice: metric name its
    PromQL uses (_bucket, _sum, _count taken off), one a line
check.py prometheus PROMETHEUS.yml
    the scrape config's shape (needs PyYAML)
check.py exported SCRAPE NAME...
    each NAME is a metric that the Prometheus text in SCRAPE exports,
    read with prometheus_client's parser
"""
import collections
import json
import re
import sys


def fail(why):
    sys.exit("check.py: " + why)


def answers(out, ids):
    seen = collections.Counter()
    with open(out, encoding="utf-8") as f:
        for line in f:
            if not line.startswith("{"):
                continue
            e = json.loads(line)
            if "finish" not in e:
                continue
            if e.get("finish") not in ("stop", "length"):
                fail(f"{e.get('id')}: finish {e.get('finish')!r}: {line.strip()}")
            if not isinstance(e.get("text"), str):
                fail(f"{e.get('id')}: no text: {line.strip()}")
            seen[e.get("id")] += 1
    want = collections.Counter(ids)
    if seen != want:
        fail(f"answers by id {dict(seen)}, want each of {sorted(want)} once")


def strip(name):
    return re.sub(r"_(bucket|sum|count)$", "", name)


def dashboard(path):
    with open(path, encoding="utf-8") as f:
        d = json.load(f)
    if not isinstance(d.get("schemaVersion"), int) or not 36 <= d["schemaVersion"] <= 41:
        fail(f"schemaVersion {d.get('schemaVersion')!r}")
    tvars = d["templating"]["list"]
    ds = [v for v in tvars if v.get("type") == "datasource" and v.get("query") == "prometheus"]
    if len(ds) != 1:
        fail("want one Prometheus datasource variable")
    ref = "${%s}" % ds[0]["name"]
    exprs, ids = [], set()
    for p in d["panels"]:
        if p["id"] in ids:
            fail(f"panel id {p['id']} twice")
        ids.add(p["id"])
        if not {"h", "w", "x", "y"} <= set(p["gridPos"]):
            fail(f"panel {p['title']}: gridPos {p['gridPos']}")
        if p["type"] == "row":
            continue
        if not p.get("targets"):
            fail(f"panel {p['title']}: no targets")
        for t in [p] + p["targets"]:
            if t["datasource"] != {"type": "prometheus", "uid": ref}:
                fail(f"panel {p['title']}: datasource {t['datasource']}")
        exprs += [t["expr"] for t in p["targets"]]
    exprs += [v["definition"] for v in tvars if v.get("type") == "query"]
    for e in exprs:
        if e.count("(") != e.count(")") or e.count("{") != e.count("}"):
            fail(f"unbalanced: {e}")
    text = "\n".join(exprs)
    # what the dashboard is for: each of these must be there
    for want in [r"histogram_quantile\(0\.5, [^\n]*sluice:time_to_first_token_seconds_bucket",
                 r"histogram_quantile\(0\.99, [^\n]*sluice:time_to_first_token_seconds_bucket",
                 r"histogram_quantile\(0\.99, [^\n]*sluice:inter_token_latency_seconds_bucket",
                 r"rate\(sluice:generation_tokens_total",
                 r"sluice:num_requests_waiting", r"sluice:num_requests_running",
                 r"sluice:kv_cache_usage_perc",
                 r"sum by \(reason\) \(rate\(sluice:admission_rejections_total",
                 r"sluice:replica_up", r"sluice:replica_requests_running"]:
        if not re.search(want, text):
            fail(f"no expression matches {want}")
    names = sorted({strip(n) for n in re.findall(r"sluice:[A-Za-z0-9_:]+", text)})
    print("\n".join(names))


def prometheus(path):
    import yaml
    with open(path, encoding="utf-8") as f:
        c = yaml.safe_load(f)
    if not re.fullmatch(r"\d+[smh]", c["global"]["scrape_interval"]):
        fail(f"global scrape_interval {c['global']['scrape_interval']!r}")
    jobs = [j["job_name"] for j in c["scrape_configs"]]
    if len(jobs) != len(set(jobs)) or not {"sluice-metrics", "sluice-gateway"} <= set(jobs):
        fail(f"job names {jobs}")
    for j in c["scrape_configs"]:
        if j.get("metrics_path", "/metrics") != "/metrics":
            fail(f"{j['job_name']}: metrics_path {j['metrics_path']}")
        targets = [t for s in j["static_configs"] for t in s["targets"]]
        if not targets or not all(re.fullmatch(r"[\w.\-\[\]:]+:\d+", t) for t in targets):
            fail(f"{j['job_name']}: targets {targets}")


def exported(scrape, names):
    from prometheus_client.parser import text_string_to_metric_families
    with open(scrape, encoding="utf-8") as f:
        fams = list(text_string_to_metric_families(f.read()))
    have = {strip(s.name) for fam in fams for s in fam.samples}
    missing = [n for n in names if n not in have]
    if not names or missing:
        fail(f"not exported by metrics: {missing or 'no names given'}")


cmd, args = sys.argv[1], sys.argv[2:]
{"answers": lambda: answers(args[0], args[1:]),
 "dashboard": lambda: dashboard(args[0]),
 "prometheus": lambda: prometheus(args[0]),
 "exported": lambda: exported(args[0], args[1:])}[cmd]()
