# Independent check of the numbers pinned in tests/eval_cli.rs (`mica eval count` / `classify` on
# the study's own answer CSVs). Python 3 standard library only; shares no code with mica.
# Run: python3 crates/metrics/tests/check_study_numbers.py
import csv, math, sys, glob, os
D=os.path.join(os.path.dirname(os.path.abspath(__file__)), '../../../../shared/data/vlms-micrographs')
def num(s):
    s=s.strip()
    if not s: return None
    try:
        v=float(s)
    except ValueError:
        return None
    return v if math.isfinite(v) else None
for f in sorted(glob.glob(D+'/results_counting_*.csv')):
    rows=list(csv.reader(open(f,encoding='utf-8-sig',newline='')))
    h=rows[0]; ti=h.index('ground truth')
    print(os.path.basename(f))
    for mi in range(len(h)):
        if mi in (0,ti): continue
        pairs=[(num(r[ti]),num(r[mi])) for r in rows[1:] if num(r[ti]) is not None]
        miss=sum(1 for t,p in pairs if p is None)
        pairs=[(t,p) for t,p in pairs if p is not None]
        n=len(pairs)
        e=[p-t for t,p in pairs]
        mae=sum(abs(x) for x in e)/n; rmse=math.sqrt(sum(x*x for x in e)/n); bias=sum(e)/n
        nz=[abs(p-t)/abs(t) for t,p in pairs if t!=0]; mape=sum(nz)/len(nz)
        exact=sum(1 for t,p in pairs if t==p)/n
        mt=sum(t for t,_ in pairs)/n; mp=sum(p for _,p in pairs)/n
        sst=sum((t-mt)**2 for t,_ in pairs); spp=sum((p-mp)**2 for _,p in pairs)
        stp=sum((t-mt)*(p-mp) for t,p in pairs)
        r=stp/math.sqrt(sst*spp); r2=1-sum(x*x for x in e)/sst
        print(f"  {h[mi]:<14} n={n:2d} missing={miss:2d} mae={mae:.10f} rmse={rmse:.10f} bias={bias:.10f} mape={mape:.10f} exact={exact:.10f} r={r:.10f} r2={r2:.10f}")
f=D+'/results_classification_NFFA-MS_chatgpt.csv'
rows=list(csv.DictReader(open(f,encoding='utf-8-sig',newline='')))
t=[r['actual_class'].strip() for r in rows]; p=[r['predicted_class'].strip() for r in rows]
classes=sorted(set(t)|set(x for x in p if x and x.lower()!='nan'), key=int)
n=len(t); acc=sum(a==b for a,b in zip(t,p))/n
rec=[]; f1s=[]
for c in classes:
    tp=sum(1 for a,b in zip(t,p) if a==c and b==c)
    fp=sum(1 for a,b in zip(t,p) if a!=c and b==c)
    fn=sum(1 for a,b in zip(t,p) if a==c and b!=c)
    sup=tp+fn
    if sup: rec.append(tp/sup)
    f1s.append(2*tp/(2*tp+fp+fn) if (2*tp+fp+fn) else 0)
    print(f"  class {c}: tp={tp} fp={fp} fn={fn} support={sup} prec={tp/(tp+fp) if tp+fp else None} rec={tp/sup:.4f} f1={f1s[-1]:.6f}")
print(f"classification n={n} unparsed={sum(1 for x in p if not x)} accuracy={acc:.10f} balanced={sum(rec)/len(rec):.10f} macro_f1={sum(f1s)/len(f1s):.10f}")
