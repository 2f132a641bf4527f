#!/usr/bin/env python3
"""A tool's section-1 page documents exactly the options its --help lists
(TAP).

  check-tool-man.py PAGE TOOL [COMMAND...]

Runs "TOOL --help" and "TOOL COMMAND --help" for each COMMAND, takes the
options each help text lists (lines of its option list that start with
"-"), and checks that PAGE mentions every one of them and every command;
and that every option PAGE mentions occurs in some help text (a stale
page documents an option the tool no longer has).
"""
import re
import subprocess
import sys


def options_listed(help_text):
    """Options at the start of an option-list line ("  --bs SIZE  ...",
    "  -h, --help", "  --io-only, --micro-only")."""
    opts = set()
    for line in help_text.splitlines():
        m = re.match(r"^\s{1,8}(-[-\w]+(?:\[?=\w+\]?)?(?:,\s*-[-\w]+)*)", line)
        if m:
            opts.update(re.findall(r"(?<![\w-])(--?[A-Za-z][\w-]*)",
                                   m.group(1)))
    return opts


def main():
    page, tool, commands = sys.argv[1], sys.argv[2], sys.argv[3:]
    with open(page, encoding="utf-8") as f:
        man = f.read()
    man_plain = man.replace("\\-", "-").replace("\\fB", "").replace(
        "\\fI", "").replace("\\fP", "").replace("\\fR", "")
    results = []
    all_help = ""
    for cmd in [None] + commands:
        argv = [tool] + ([cmd] if cmd else []) + ["--help"]
        r = subprocess.run(argv, capture_output=True, text=True)
        text = r.stdout + r.stderr
        all_help += text
        label = " ".join(["aioloop-bench"] + ([cmd] if cmd else []))
        if r.returncode != 0 or not text.strip():
            results.append((False, "%s --help runs" % label,
                            "status %d" % r.returncode))
            continue
        listed = options_listed(text)
        if cmd:
            listed.add(cmd)
        else:
            # The commands the top-level help lists ("commands:" block).
            block = re.search(r"^commands:\n((?:\s+\S.*\n)+)", text, re.M)
            if block:
                listed.update(re.findall(r"^\s+([a-z][\w-]*)\s",
                                         block.group(1), re.M))
        missing = sorted(o for o in listed
                         if not re.search(r"(?<![\w-])%s(?![\w-])"
                                          % re.escape(o), man_plain))
        results.append((not missing, "the page documents the %d options "
                        "of %s --help" % (len(listed), label),
                        "not in %s: %s" % (page, " ".join(missing))))
    in_page = set(re.findall(r"(?<![\w-])(--[a-z][\w-]*)", man_plain))
    stale = sorted(o for o in in_page
                   if not re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(o),
                                    all_help))
    results.append((not stale, "every option of the page is in a --help "
                    "text (%d options)" % len(in_page),
                    "the tool does not know: " + " ".join(stale)))
    print("1..%d" % len(results))
    bad = 0
    for k, (ok, desc, detail) in enumerate(results, 1):
        print("%s %d - %s" % ("ok" if ok else "not ok", k, desc))
        if not ok:
            bad += 1
            print("#   " + detail)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
