# regen.py - write tests/mutants/NN-name.patch from the mutations below.
# Each is (name, file, text, its mutant, what it breaks, the test that
# must catch it first).  When the code a mutation names moves or changes,
# edit it here and run this again (python3 tests/mutants/regen.py).
import difflib, os, sys
import pathlib
root=str(pathlib.Path(__file__).resolve().parents[2])
muts=[
 ('skip-zap','src/view.c','	err = zap_range(PAGE_ADDR(v, s), (e - s) << PAGE_SHIFT, strict);','	err = 0;',
  'a conversion to private zaps no view','test_convert'),
 ('map-in-transit','src/fault.c','		if (page_pinned(g, page)) {','		if (page_pinned(g, page) || true) {',
  'the fault thread maps an unpinned page in transit','test_pin'),
 ('scan-before-publish','src/convert.c','	n = state_replace(g, first, end, STATE_MASK(GMEM_SHARED), GMEM_CONVERTING, &scan);',
  '	pins_scan(g, first, end, STATE_MASK(GMEM_SHARED), &scan);\n	n = state_replace(g, first, end, STATE_MASK(GMEM_SHARED), GMEM_CONVERTING, NULL);',
  'a conversion reads the pins before it publishes CONVERTING (seed 002\'s race)','test_pin'),
 ('undeny-short','src/view.c','				err = undeny_run(g, v, r.start, r.end);','				err = undeny_run(g, v, r.start, r.end - 1);',
  're-sharing clears refusal marks over one page less than it must','test_fault'),
 ('clip-off-by-one','src/view.c','	return *first < *end;\n}','	return *first + 1 < *end;\n}',
  'clipping a range to a view drops overlaps of one page','test_convert'),
 ('run-split-off-by-one','src/core/runmap.c','	split_at(m, e, from_mask);','	split_at(m, e - 1, from_mask);',
  'a state change splits the run at its end one page early','test_runmap'),
 ('drop-error-offset','src/convert.c','		*error_offset = busy << PAGE_SHIFT;','		(void)busy;',
  'gmem_convert() never reports the offending page','test_pin'),
 ('pin-converting','src/core/pinword.h','	if (pw_state(old) != GMEM_SHARED || (old & PW_HELD))','	if (old & PW_HELD)',
  'a pin is granted on a page in transit','test_pin'),
 ('defer-never-completes','src/convert.c','		if (!transit_overlaps(t, first, end, GMEM_CONVERT_DEFER)) {','		if (true) {',
  'the last unpin never completes a deferred conversion','test_pin'),
 ('defer-reported-twice','src/convert.c','''		if (cb)
			cb(g, t->first << PAGE_SHIFT, (t->end - t->first) << PAGE_SHIFT, GMEM_PRIVATE,
			   t->result, arg);''','''		if (cb)
			cb(g, t->first << PAGE_SHIFT, (t->end - t->first) << PAGE_SHIFT, GMEM_PRIVATE,
			   t->result, arg);
		if (cb)
			cb(g, t->first << PAGE_SHIFT, (t->end - t->first) << PAGE_SHIFT, GMEM_PRIVATE,
			   t->result, arg);''',
  'a deferred conversion\'s end is reported twice','test_pin'),
 ('hold-ignores-longterm','src/pin.c','		pinned |= (atomic_fetch_or(w, PW_HELD) & PW_COUNTS) != 0;','		pinned |= (atomic_fetch_or(w, PW_HELD) & PW_SHORT_MASK) != 0;',
  'a discard punches pages only a long-term pin holds','test_transitions'),
 ('audit-skips-last-view','src/audit.c','	for (size_t i = 0; !err && (v = views_next(g, &i, 0, g->npages, &s, &e));) {','	for (size_t i = 0; !err && (v = views_next(g, &i, 0, g->npages, &s, &e)) && i < g->nviews;) {',
  'the audit skips the highest-addressed view','test_audit'),
 ('copy-after-unlock','src/access.c','	if (pages_all(g, first, end, PW_POPULATED))\n		copy_shared(buf, g->b.guest + offset, len);\n	else\n		err = read_slow(g, buf, offset, len);\n	unlock(g);','	unlock(g);\n	if (pages_all(g, first, end, PW_POPULATED))\n		copy_shared(buf, g->b.guest + offset, len);\n	else\n		err = read_slow(g, buf, offset, len);',
  'gmem_read() copies after it lets conversions in','test_access'),
 ('copy-skips-last-page','src/access.c','	uint64_t end = (offset + len + GMEM_PAGE_SIZE - 1) >> PAGE_SHIFT;','	uint64_t end = (offset + len) >> PAGE_SHIFT;',
  'a copy checks every page but the one its last byte is in','test_access'),
 ('collapse-ignores-pins','src/huge.c','	if (pins_hold(g, first, end)) {','	if (pins_hold(g, first, end) && false) {',
  'gmem_collapse() copies a block a pin holds, under I/O in flight','test_huge'),
 ('collapse-keeps-holes','src/huge.c','	if (err > 0 && fallocate(g->b.fd, FALLOC_FL_KEEP_SIZE, (off_t)(b * g->b.align),','	if (false && fallocate(g->b.fd, FALLOC_FL_KEEP_SIZE, (off_t)(b * g->b.align),',
  'gmem_collapse() leaves a block\'s holes to the kernel, which will not fill them under a view','test_huge'),
 ('zap-forgets-writes','src/view.c','	track_mapped(g, v, s, e);\n	err = zap_range(PAGE_ADDR(v, s), (e - s) << PAGE_SHIFT, strict);','	err = zap_range(PAGE_ADDR(v, s), (e - s) << PAGE_SHIFT, strict);',
  'a zap keeps no record of what the view may map: a write tracking had in the entry is lost with it','test_track'),
 ('view-maps-before-fill','src/fault.c','	if (lazy_active(g)) {\n		int err = lazy_fill(g, s, e, true);','	if (lazy_active(g) && false) {\n		int err = lazy_fill(g, s, e, true);',
  'the fault thread maps a view\'s window of a lazy restore without filling it first: the backing gives the pages zeros','test_snapshot'),
 ('fill-skips-block','src/lazy.c','			done += g->b.hugetlb ? g->b.align : GMEM_PAGE_SIZE;','			done += g->b.align;',
  'a THP block\'s fill that meets a page a toucher got skips the rest of the block, which is settled unfilled','test_snapshot'),
 ('forget-leaves-fault-waiting','src/lazy.c','			uffd_wake(g->uffd, (uintptr_t)g->b.guest + (first << PAGE_SHIFT),\n				  (end - first) << PAGE_SHIFT);\n			/* a THP block','			/* a THP block',
  'post-copy: a discard settles a page a guest fault waits on without waking it: the touch waits for every other page','test_postcopy'),
 ('abort-wakes-poisoned-only','src/lazy.c','		uffd_wake(g->uffd, base + (s << PAGE_SHIFT), (e - s) << PAGE_SHIFT);\n		p = q;','		uffd_wake(g->uffd, addr, base + (q << PAGE_SHIFT) - addr);\n		p = q;',
  'post-copy: an abort wakes the pages it poisons, not their THP block: a fault on a page of it a discard settled waits for ever','test_postcopy'),
 ('receive-unchecked','src/postcopy.c','		if (len - at - rec < plen ||\n		    snap_record_hash(id, SNAP_LOOSE | r.first, &r, p + at + rec, plen) != r.hash)','		if (len - at - rec < plen)',
  'post-copy: a record received is applied without its hash checked','test_postcopy'),
]
for n,(name,f,old,new,what,killer) in enumerate(muts,1):
    src=open(os.path.join(root,f)).read()
    if src.count(old)!=1: sys.exit(f'{name}: {src.count(old)} matches in {f}')
    dst=src.replace(old,new)
    diff=''.join(difflib.unified_diff(src.splitlines(True),dst.splitlines(True),'a/'+f,'b/'+f,n=3))
    hdr=f'Mutant: {what}.\nKilled-by: {killer}\n\n'
    open(os.path.join(root,'tests/mutants',f'{n:02d}-{name}.patch'),'w').write(hdr+diff)
for f in os.listdir(os.path.join(root,'tests/mutants')):
    if f.endswith('.patch') and f[3:-6] not in [m[0] for m in muts]:
        os.remove(os.path.join(root,'tests/mutants',f))
print('ok')
