#!/usr/bin/env python3
"""Inventory of the calibration renders: one record per StatefulSet/Deployment
mount, with stateguard's judgement of it.

Usage: inventory.py [RENDERS_DIR [JUDGED_DIR [OUT_PREFIX]]]
  defaults: /tmp/calib/renders /tmp/calib/judged /tmp/calib/inventory
Writes OUT_PREFIX.jsonl (one line per workload) and OUT_PREFIX.tsv (one line
per volume mount, plus one line per workload without any mount) with the
columns:
  render kind name replicas container image volume vtype mountPath subPath ro
  flagged(rule:action;...) vcts
"""
import glob, json, os, re, sys
import yaml

renders = sys.argv[1] if len(sys.argv) > 1 else '/tmp/calib/renders'
judged = sys.argv[2] if len(sys.argv) > 2 else '/tmp/calib/judged'
out = sys.argv[3] if len(sys.argv) > 3 else '/tmp/calib/inventory'


def vtype(v):
    for k in ('emptyDir', 'persistentVolumeClaim', 'ephemeral', 'configMap', 'secret',
              'projected', 'hostPath', 'downwardAPI', 'csi', 'nfs'):
        if k in v:
            if k == 'emptyDir' and (v.get('emptyDir') or {}).get('medium') == 'Memory':
                return 'emptyDir(Memory)'
            if k == 'persistentVolumeClaim':
                return 'pvc:' + v[k].get('claimName', '?')
            return k
    return 'other'


recs, rows, vrows = [], [], []
for f in sorted(glob.glob(os.path.join(renders, '*.yaml'))):
    render = os.path.basename(f)[:-5]
    try:
        docs = [d for d in yaml.safe_load_all(open(f)) if isinstance(d, dict)]
    except Exception as e:  # noqa
        print('unreadable', f, e, file=sys.stderr)
        continue
    res = []
    jf = os.path.join(judged, render + '.json')
    if os.path.exists(jf):
        try:
            res = json.load(open(jf)).get('results') or []
        except Exception:
            pass
    pvcs = {d['metadata']['name']: d.get('spec', {}).get('accessModes')
            for d in docs if d.get('kind') == 'PersistentVolumeClaim'}
    for d in docs:
        if d.get('kind') not in ('StatefulSet', 'Deployment'):
            continue
        name = d['metadata']['name']
        spec = d.get('spec') or {}
        pod = (spec.get('template') or {}).get('spec') or {}
        vols = {v['name']: v for v in pod.get('volumes') or []}
        vcts = [(c['metadata']['name'], (c.get('spec') or {}).get('accessModes'))
                for c in spec.get('volumeClaimTemplates') or []]
        mine = [r for r in res if r['kind'] == d['kind'] and r['name'] == name]
        rec = dict(render=render, kind=d['kind'], name=name, replicas=spec.get('replicas'),
                   strategy=(spec.get('strategy') or spec.get('updateStrategy') or {}).get('type'),
                   vcts=vcts, results=mine, containers=[], pvcs=pvcs)
        conts = [('init', c) for c in pod.get('initContainers') or []] + \
                [('main', c) for c in pod.get('containers') or []]
        any_mount = False
        for i, (role, c) in enumerate(conts):
            env = {e['name']: e.get('value') for e in c.get('env') or [] if 'value' in e}
            rec['containers'].append(dict(role=role, name=c['name'], image=c.get('image'),
                                          mounts=c.get('volumeMounts') or [], env=env,
                                          args=c.get('args'), command=c.get('command')))
            for m in c.get('volumeMounts') or []:
                any_mount = True
                v = vols.get(m['name'])
                vt = vtype(v) if v else ('vct' if m['name'] in [x[0] for x in vcts] else 'missing')
                idx = (pod.get('initContainers') or []).index(c) if role == 'init' else (pod.get('containers') or []).index(c)
                field_prefix = 'spec.template.spec.%s[%d].volumeMounts[' % (
                    'initContainers' if role == 'init' else 'containers', idx)
                fl = [r for r in mine if r['field'].startswith(field_prefix) and
                      ('"%s"' % m['name']) in r['message'] and m['mountPath'] in r['message']]
                rows.append([render, d['kind'], name, str(spec.get('replicas')),
                             role + ':' + c['name'], c.get('image', ''), m['name'], vt,
                             m['mountPath'], m.get('subPath', '') or m.get('subPathExpr', ''),
                             'ro' if m.get('readOnly') else 'rw',
                             ';'.join('%s:%s' % (r['rule'], r['action']) for r in fl),
                             ','.join(x[0] for x in vcts)])
        if not any_mount:
            rows.append([render, d['kind'], name, str(spec.get('replicas')), '', ','.join(
                c.get('image', '') for _, c in conts), '', 'NONE', '', '', '', '', ','.join(x[0] for x in vcts)])
        recs.append(rec)
        # one row per Pod-template volume (and per claim template)
        for vn in list(vols) + [x[0] for x in vcts if x[0] not in vols]:
            v = vols.get(vn)
            vt = vtype(v) if v else 'vct'
            if v and v.get('emptyDir') is not None and (v['emptyDir'] or {}).get('sizeLimit'):
                vt += '[%s]' % v['emptyDir']['sizeLimit']
            ms = []
            for c in rec['containers']:
                for m in c['mounts']:
                    if m['name'] == vn:
                        ms.append('%s%s:%s%s%s' % ('i:' if c['role'] == 'init' else '', c['name'], m['mountPath'],
                                                  ('[' + (m.get('subPath') or m.get('subPathExpr')) + ']') if (m.get('subPath') or m.get('subPathExpr')) else '',
                                                  ':ro' if m.get('readOnly') else ''))
            fl = sorted({'%s:%s' % (r['rule'], r['action']) for r in mine if ('"%s"' % vn) in r['message']})
            vrows.append([render, d['kind'], name, str(spec.get('replicas')), vn, vt, ' '.join(ms), ';'.join(fl),
                          ' '.join(sorted({c['image'] or '' for c in rec['containers'] if c['role'] == 'main'}))])

with open(out + '.jsonl', 'w') as fh:
    for r in recs:
        fh.write(json.dumps(r) + '\n')
with open(out + '.tsv', 'w') as fh:
    fh.write('\t'.join(['render', 'kind', 'name', 'replicas', 'container', 'image', 'volume', 'vtype',
                        'mountPath', 'subPath', 'ro', 'flagged', 'vcts']) + '\n')
    for r in rows:
        fh.write('\t'.join(r) + '\n')
with open(out + '-volumes.tsv', 'w') as fh:
    fh.write('\t'.join(['render', 'kind', 'name', 'replicas', 'volume', 'vtype', 'mounts', 'flagged', 'images']) + '\n')
    for r in vrows:
        fh.write('\t'.join(r) + '\n')
print('%d workloads, %d mount rows -> %s.{jsonl,tsv}' % (len(recs), len(rows), out))
