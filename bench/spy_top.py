"""Summarise py-spy raw (collapsed) stacks: self and inclusive share per frame.

Usage: .venv/bin/python bench/spy_top.py PROFILE.txt  (from bench/run.py --profile DIR)
"""
import sys, collections
self_t, incl = collections.Counter(), collections.Counter()
total = 0
thread_filter = sys.argv[2] if len(sys.argv) > 2 else None
for line in open(sys.argv[1]):
    stack, _, n = line.rstrip().rpartition(" ")
    n = int(n); total += n
    frames = stack.split(";")
    if thread_filter and thread_filter not in frames[0]: continue
    self_t[frames[-1]] += n
    for f in set(frames): incl[f] += n
print("total", total)
print("== self")
for f, n in self_t.most_common(25): print(f"{100*n/total:5.1f}% {f}")
print("== inclusive")
for f, n in incl.most_common(45): print(f"{100*n/total:5.1f}% {f}")
