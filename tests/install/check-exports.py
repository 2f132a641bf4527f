#!/usr/bin/env python3
"""check-exports.py - the library's exports are exactly its public API.

The lists below must agree, and every name that one has and another
lacks is printed:

  headers  every function and variable declared with AIOLOOP_API in the
           headers (<aioloop/*.h>), read through the C preprocessor with
           AIOLOOP_BUILDING defined, so that AIOLOOP_API expands to the
           visibility attribute and the configuration (config.h: the
           GLib-only declarations...) is applied as the library saw it;
  map      the names of src/aioloop.map's global: list, which must be
           literal (a wildcard would export whatever an internal helper
           happens to be called); it equals the headers' names in every
           configuration (read without the preprocessor), and those the
           configuration keeps equal the library's;
  library  `nm -D --defined-only` of the shared library, less the version
           node names (absolute symbols the linker adds).

Usage:
  check-exports.py --headers INCLUDE_DIR [--config BUILD/include]
                   --map MAP --lib LIBRARY
      (a source tree's headers: --config names where aioloop/config.h is)
  check-exports.py --install BUILD_DIR --map MAP
      (installs BUILD_DIR into a temporary directory with meson install
      and checks the installed headers and library)
  check-exports.py --print-headers INCLUDE_DIR
      (prints the names declared in any configuration, one a line:
      the names the map must list)

Output is TAP: one test per comparison.

SPDX-License-Identifier: MIT
"""
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile

ATTR = '__attribute__((visibility("default")))'


def header_names(incdir, extra=()):
    """The AIOLOOP_API names declared by incdir/aioloop/*.h (extra: more
    include directories, e.g. a build tree's for aioloop/config.h)."""
    headers = sorted(glob.glob(os.path.join(incdir, "aioloop", "*.h")))
    if not headers:
        raise SystemExit("no headers under %s/aioloop" % incdir)
    src = "".join('#include "%s"\n' % h for h in headers)
    cc = os.environ.get("CC", "cc").split()
    out = subprocess.run(cc + ["-E", "-DAIOLOOP_BUILDING", "-D_GNU_SOURCE",
                               "-I", incdir] +
                         [f for d in extra for f in ("-I", d)] +
                         ["-x", "c", "-"],
                         input=src, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit("preprocessing the headers failed:\n" + out.stderr)
    # Keep only the text that came from the aioloop headers themselves
    # (line markers name the file), not from system headers.
    mine = os.path.realpath(os.path.join(incdir, "aioloop"))
    keep, text = False, []
    for line in out.stdout.splitlines():
        m = re.match(r'# \d+ "([^"]*)"', line)
        if m:
            keep = os.path.realpath(m.group(1)).startswith(mine + os.sep)
            continue
        if keep:
            text.append(line)
    text = " ".join(text)
    names = set()
    pos = 0
    while True:
        i = text.find(ATTR, pos)
        if i < 0:
            break
        j = i + len(ATTR)
        # The declaration ends at the first ';' or '{' outside brackets.
        depth, k = 0, j
        while k < len(text):
            c = text[k]
            if c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
            elif c in ";{" and depth == 0:
                break
            k += 1
        decl = " ".join(text[j:k].split())
        decl = re.sub(r"__attribute__\s*\(\(.*\)\)\s*$", "", decl).strip()
        paren = decl.find("(")
        if paren >= 0:
            # A function: the identifier just before its parameter list
            # (or a function returning a function pointer: "(*name(").
            m = re.search(r"([A-Za-z_]\w*)\s*$", decl[:paren])
            if not m:
                m = re.match(r"\(\s*\*\s*([A-Za-z_]\w*)\s*\(", decl[paren:])
        else:
            m = re.search(r"([A-Za-z_]\w*)\s*(\[[^\]]*\]\s*)*$", decl)
        if not m:
            raise SystemExit("cannot find the name in: " + decl)
        names.add(m.group(1))
        pos = k
    return names


def header_names_any_config(incdir):
    """The AIOLOOP_API names of incdir/aioloop/*.h in any configuration
    (conditionals not applied: the map lists the GLib-only names too)."""
    names = set()
    for h in sorted(glob.glob(os.path.join(incdir, "aioloop", "*.h"))):
        text = open(h).read()
        text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
        text = re.sub(r"//[^\n]*", " ", text)
        text = re.sub(r"(?m)^\s*#.*(\\\n.*)*$", " ", text)
        for m in re.finditer(r"\bAIOLOOP_API\b([^;{]*)", text):
            decl = " ".join(m.group(1).split())
            if "(" in decl:
                n = re.search(r"([A-Za-z_]\w*)\s*$", decl[:decl.find("(")])
            else:
                n = re.search(r"([A-Za-z_]\w*)\s*(\[[^\]]*\]\s*)*$", decl)
            if not n:
                raise SystemExit("cannot find the name in: " + decl)
            names.add(n.group(1))
    return names


def map_names(path):
    """(names of the map's global: list, wildcard patterns, node names)."""
    text = open(path).read()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"#[^\n]*", " ", text)
    nodes = set(re.findall(r"([A-Za-z_]\w*)\s*\{", text))
    names, wild = set(), []
    for block in re.findall(r"global\s*:(.*?)(?:local\s*:|\})", text, re.S):
        for entry in block.split(";"):
            entry = entry.strip()
            if not entry:
                continue
            if re.search(r"[*?\[]", entry):
                wild.append(entry)
            else:
                names.add(entry)
    return names, wild, nodes


def lib_names(lib, nodes):
    out = subprocess.run(["nm", "-D", "--defined-only", lib],
                         capture_output=True, text=True, check=True)
    names = set()
    for line in out.stdout.splitlines():
        f = line.split()
        if len(f) < 2:
            continue
        name, kind = f[-1].split("@")[0], f[-2]
        if kind == "A" and name in nodes:
            continue
        names.add(name)
    return names


def compare(n, what, a_name, a, b_name, b):
    missing, extra = sorted(a - b), sorted(b - a)
    if not missing and not extra:
        print("ok %d - %s: %d names" % (n, what, len(a)))
        return True
    print("not ok %d - %s" % (n, what))
    for s in missing:
        print("# in %s, not in %s: %s" % (a_name, b_name, s))
    for s in extra:
        print("# in %s, not in %s: %s" % (b_name, a_name, s))
    return False


def main(argv):
    args = dict(zip(argv[0::2], argv[1::2]))
    if "--print-headers" in args:
        print("\n".join(sorted(header_names_any_config(args["--print-headers"]))))
        return 0
    stage = None
    try:
        if "--install" in args:
            stage = tempfile.mkdtemp(prefix="aioloop-exports.")
            subprocess.run(["meson", "install", "-C", args["--install"],
                            "--destdir", stage, "--no-rebuild", "--quiet"],
                           check=True, stdout=subprocess.DEVNULL)
            inc = [os.path.dirname(d) for d in
                   glob.glob(stage + "/**/include/aioloop", recursive=True)]
            libs = glob.glob(stage + "/**/libaioloop.so.*.*.*",
                             recursive=True)
            if len(inc) != 1 or len(libs) != 1:
                print("1..1\nnot ok 1 - installed headers (%s) and library "
                      "(%s) not found once each" % (inc, libs))
                return 1
            incdir, lib = inc[0], libs[0]
        else:
            incdir, lib = args["--headers"], args["--lib"]
        heads = header_names(incdir, [args["--config"]]
                             if "--config" in args else [])
        heads_any = header_names_any_config(incdir)
        mapped, wild, nodes = map_names(args["--map"])
        exported = lib_names(lib, nodes)
        print("1..4")
        ok = True
        if wild:
            print("not ok 1 - the map lists names, not patterns")
            for w in wild:
                print("# wildcard in the map: %s" % w)
            ok = False
        else:
            print("ok 1 - the map lists names, not patterns")
        ok &= compare(2, "map == headers' AIOLOOP_API declarations "
                      "(any configuration)",
                      "the headers", heads_any, "the map", mapped)
        ok &= compare(3, "library's dynamic symbols == headers'",
                      "the headers", heads, "the library", exported)
        ok &= compare(4, "library's dynamic symbols == map, less the "
                      "names this configuration does not declare",
                      "the map", mapped & heads, "the library", exported)
        return 0 if ok else 1
    finally:
        if stage:
            shutil.rmtree(stage, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
