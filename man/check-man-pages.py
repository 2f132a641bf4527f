#!/usr/bin/env python3
"""Checks the generated man pages (TAP).

  check-man-pages.py --srcdir SRC --mandir DIR [--library libaioloop.so]

1. Every AIOLOOP_API symbol declared in SRC/include (found here with a
   parser of its own, not the generator's) has DIR/man3/NAME.3: a page
   whose NAME line lists it, or a ".so" link to such a page.
2. Every symbol the shared library exports (nm -D) has a page.
3. Every page has the sections NAME, SYNOPSIS, DESCRIPTION, RETURN VALUE,
   ERRORS, THREAD SAFETY, SEE ALSO; a function's THREAD SAFETY is
   documented; every "name(3)" in SEE ALSO exists.
4. groff -man -ww prints no warning for any page.
5. man finds the pages in DIR by name (man -M DIR -w aio_poll), and
   man --warnings renders aio_poll(3) and aioloop(7) silently.
6. Self-test: on a scratch source tree with an undocumented AIOLOOP_API
   function, the generator exits 1 and check 1 reports the function.

A tool (groff, man, nm) that is missing skips its check with the reason,
unless we run as root: then scripts/install-deps could have installed it,
and its absence is a failure.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

SECTIONS = ["NAME", "SYNOPSIS", "DESCRIPTION", "RETURN VALUE", "ERRORS",
            "THREAD SAFETY", "SEE ALSO"]

results = []


def report(ok, desc, detail=None, skip=None):
    results.append((ok, desc, detail, skip))


def tool_missing(name, what):
    reason = "%s is not installed" % name
    if os.geteuid() == 0:
        report(False, what, reason + " (run scripts/install-deps as root)")
    else:
        report(True, what, skip=reason)


def api_symbols(incdir):
    """{name: header} for every declaration that starts with AIOLOOP_API."""
    found = {}
    for root, _, files in os.walk(incdir):
        for f in sorted(files):
            if not f.endswith(".h"):
                continue
            path = os.path.join(root, f)
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
            text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
            text = re.sub(r"//[^\n]*", " ", text)
            text = re.sub(r"^\s*#[^\n]*(\\\n[^\n]*)*", " ", text, flags=re.M)
            for m in re.finditer(r"\bAIOLOOP_API\b([^;{]*)", text):
                decl = re.sub(r"\b[A-Z_]+\s*\([^()]*\)\s*$", "", m.group(1))
                decl = re.sub(r"__attribute__\s*\(\(.*?\)\)", "", decl)
                decl = decl.strip()
                if re.match(r"^extern\b", decl):
                    # A variable: its name ends the declaration.
                    vm = re.search(r"([A-Za-z_]\w*)\s*(\[[^\]]*\])?\s*$",
                                   decl)
                    if vm:
                        found[vm.group(1)] = os.path.relpath(path, incdir)
                    continue
                # A function: the identifier before the first parenthesis
                # (function-pointer parameters come after it).
                fm = re.search(r"([A-Za-z_]\w*)\s*\(", decl)
                if fm:
                    found[fm.group(1)] = os.path.relpath(path, incdir)
    return found


def read_page(mandir, name, depth=0):
    """(text of the page NAME.3 after following .so links, link target)."""
    path = os.path.join(mandir, "man3", name + ".3")
    if not os.path.exists(path):
        return None, None
    with open(path, encoding="ascii") as f:
        text = f.read()
    m = re.match(r"^\.so\s+(\S+)\s*$", text)
    if m and depth < 3:
        target = os.path.join(mandir, m.group(1))
        tname = os.path.basename(m.group(1))[:-2]
        if not os.path.exists(target):
            return None, tname
        t, _ = read_page(mandir, tname, depth + 1)
        return t, tname
    return text, None


def name_line(text):
    m = re.search(r"^\.SH NAME\n(.*?)\n\.", text, re.M | re.S)
    if not m:
        return []
    names = m.group(1).split("\\-")[0]
    return [n.strip().replace("\\", "") for n in names.split(",")]


def check_coverage(mandir, symbols, what):
    missing = []
    for name in sorted(symbols):
        text, _ = read_page(mandir, name)
        if text is None or name not in name_line(text):
            missing.append(name)
    report(not missing, "%s: %d of %d have a man page"
           % (what, len(symbols) - len(missing), len(symbols)),
           "no page (or a page whose NAME does not list it) for: "
           + ", ".join(missing) if missing else None)
    return missing


def check_sections(mandir):
    problems = []
    pages = sorted(os.listdir(os.path.join(mandir, "man3")))
    existing = {p[:-2] for p in pages}
    for p in pages:
        text, _ = read_page(mandir, p[:-2])
        if text is None:
            problems.append("%s: dangling .so link" % p)
            continue
        heads = re.findall(r"^\.SH (.*)$", text, re.M)
        for s in SECTIONS:
            if s not in heads:
                problems.append("%s: no %s section" % (p, s))
        if heads != [h for h in heads if h in SECTIONS + ["LIBRARY"]]:
            problems.append("%s: unexpected sections %s" % (p, heads))
        ts = re.search(r"^\.SH THREAD SAFETY\n(.*?)(?=^\.SH)", text,
                       re.M | re.S)
        if ts and "Not documented" in ts.group(1):
            problems.append("%s: no thread tag" % p)
        see = re.search(r"^\.SH SEE ALSO\n(.*)", text, re.M | re.S)
        if see:
            for ref in re.findall(r"\\fB(?:\\%)?([\w]+)\\fP\(3\)",
                                  see.group(1)):
                if ref not in existing:
                    problems.append("%s: SEE ALSO names %s(3), which does "
                                    "not exist" % (p, ref))
    report(not problems, "%d pages have every section and valid SEE ALSO "
           "references" % len(pages), "\n".join(problems[:40]))


def page_files(mandir):
    files = []
    for sec in ("man3", "man7"):
        d = os.path.join(mandir, sec)
        files += [os.path.join(sec, f) for f in sorted(os.listdir(d))]
    return files


def check_groff(mandir):
    if not shutil.which("groff"):
        tool_missing("groff", "groff -ww: pages format without warnings")
        return
    files = page_files(mandir)
    # One run for all pages (warnings name the file); .so paths are
    # relative to the man directory.
    r = subprocess.run(["groff", "-man", "-ww", "-z", "-Tutf8", "-rLL=78n"]
                       + files, cwd=mandir, capture_output=True, text=True)
    out = (r.stdout + r.stderr).strip()
    report(r.returncode == 0 and not out,
           "groff -man -ww: %d pages format without warnings" % len(files),
           out[:4000] or "groff exit status %d" % r.returncode)


def check_man(mandir):
    if not shutil.which("man"):
        tool_missing("man", "man finds and renders the pages")
        return
    env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8", MANPAGER="cat",
               PAGER="cat")
    env.pop("MANPATH", None)
    r = subprocess.run(["man", "-M", mandir, "-w", "aio_poll"],
                       capture_output=True, text=True, env=env)
    want = os.path.join(mandir, "man3", "aio_poll.3")
    report(r.returncode == 0 and
           os.path.realpath(r.stdout.strip()) == os.path.realpath(want),
           "man -M DIR -w aio_poll finds man3/aio_poll.3",
           "man printed %r, status %d: %s" % (r.stdout.strip(),
                                              r.returncode, r.stderr))
    for page in ("man3/aio_poll.3", "man3/aio_bh_new.3", "man7/aioloop.7"):
        r = subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", page],
                           cwd=mandir, capture_output=True, text=True,
                           env=env)
        ok = r.returncode == 0 and not r.stderr.strip() and \
            "SYNOPSIS" in r.stdout
        report(ok, "man --warnings -l %s renders silently" % page,
               "status %d, stderr: %s" % (r.returncode, r.stderr.strip()))


def check_library(mandir, library):
    if not library:
        return
    if not shutil.which("nm"):
        tool_missing("nm", "every exported symbol of the library has a page")
        return
    r = subprocess.run(["nm", "-D", "--defined-only", library],
                       capture_output=True, text=True)
    syms = set()
    for line in r.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] in "TDBRVWi" and \
                not parts[2].startswith("AIOLOOP_"):
            syms.add(parts[2].split("@")[0])
    if r.returncode != 0 or not syms:
        report(False, "nm -D lists the library's exports", r.stderr)
        return
    check_coverage(mandir, syms, "symbols exported by %s"
                   % os.path.basename(library))


def self_test(srcdir):
    """The generator and check 1 catch an undocumented function."""
    with tempfile.TemporaryDirectory() as tmp:
        os.makedirs(os.path.join(tmp, "docs"))
        os.makedirs(os.path.join(tmp, "man"))
        os.makedirs(os.path.join(tmp, "include", "aioloop"))
        shutil.copy(os.path.join(srcdir, "docs", "kerneldoc-filter.py"),
                    os.path.join(tmp, "docs"))
        shutil.copy(os.path.join(srcdir, "man", "aioloop.7.in"),
                    os.path.join(tmp, "man"))
        with open(os.path.join(tmp, "include", "aioloop", "t.h"), "w") as f:
            f.write("/*\n * aioloop/t.h - a test header.\n */\n"
                    "/**\n * t_documented - a documented call.\n"
                    " * Returns: 0.\n * Any thread.\n */\n"
                    "AIOLOOP_API int t_documented(void);\n\n"
                    "AIOLOOP_API int t_forgotten(int x);\n")
        out = os.path.join(tmp, "out")
        r = subprocess.run([sys.executable,
                            os.path.join(srcdir, "scripts", "gen-man.py"),
                            "--srcdir", tmp, "--outdir", out, "--strict"],
                           capture_output=True, text=True)
        saved = list(results)
        missing = check_coverage(out, api_symbols(os.path.join(tmp,
                                                               "include")),
                                 "self-test")
        results[:] = saved
        ok = (r.returncode == 1 and "t_forgotten" in r.stderr and
              missing == ["t_forgotten"])
        report(ok, "self-test: an undocumented function fails the "
               "generator and the coverage check",
               "generator status %d, stderr %r, missing %r"
               % (r.returncode, r.stderr, missing))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--srcdir", required=True)
    ap.add_argument("--mandir", required=True)
    ap.add_argument("--library")
    args = ap.parse_args()
    mandir = os.path.abspath(args.mandir)
    symbols = api_symbols(os.path.join(args.srcdir, "include"))
    if not symbols:
        report(False, "AIOLOOP_API symbols found in include/", "none found")
    else:
        check_coverage(mandir, symbols, "AIOLOOP_API symbols of include/")
    check_library(mandir, args.library)
    check_sections(mandir)
    check_groff(mandir)
    check_man(mandir)
    self_test(args.srcdir)
    print("1..%d" % len(results))
    failed = 0
    for k, (ok, desc, detail, skip) in enumerate(results, 1):
        if skip:
            print("ok %d - %s # SKIP %s" % (k, desc, skip))
            continue
        print("%s %d - %s" % ("ok" if ok else "not ok", k, desc))
        if not ok:
            failed += 1
            for line in (detail or "").splitlines():
                print("#   " + line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
