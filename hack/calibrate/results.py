#!/usr/bin/env python3
"""Distinct stateguard results over the calibration renders, grouped by
chart, rule, object, field and message head, with the variants they occur in.
Usage: results.py [JUDGED_DIR]  (default /tmp/calib/judged)"""
import collections, glob, json, os, sys
judged = sys.argv[1] if len(sys.argv) > 1 else '/tmp/calib/judged'
agg = collections.OrderedDict()
for f in sorted(glob.glob(os.path.join(judged, '*.json'))):
    chart, var = os.path.basename(f)[:-5].split('--', 1)
    try:
        res = json.load(open(f)).get('results') or []
    except Exception as e:
        print('unreadable', f, e, file=sys.stderr)
        continue
    for x in res:
        k = (chart, x['rule'], x['action'], x['kind'], x['name'], x['field'], x['message'][:140])
        agg.setdefault(k, []).append(var)
for k, v in agg.items():
    print(' | '.join(k), '|', ','.join(v))
