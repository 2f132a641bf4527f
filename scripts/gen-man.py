#!/usr/bin/env python3
"""gen-man.py - section 3 and 7 man pages from aioloop's header comments.

The public headers document every function in the man-page-like style
that docs/kerneldoc-filter.py already translates for Doxygen (and whose
checks `make docs` enforces):

    /**
     * aio_poll - run one iteration of @ctx's event loop.
     * @blocking: if true, wait until ...
     *
     * Runs the ready bottom halves ...
     * Returns: true if progress was made ...
     * Loop thread only.
     */
    AIOLOOP_API bool aio_poll(AioContext *ctx, bool blocking);

This script reads the same comments with the same rules (it imports the
filter's patterns: the "name - " prefix, the thread tag, which line is a
declaration) and writes one page per documented function, exported
variable, and function-like macro of a header that exports functions
(aio_bh_new, error_setg...):

    NAME          the name(s) and the summary after "name - "
    SYNOPSIS      the #include line and the prototype, parameters in italics
    LIBRARY       -laioloop, pkg-config aioloop
    DESCRIPTION   the comment: summary, the @param: list, the other text
    RETURN VALUE  the "Returns" paragraph (a getter without one: its summary)
    ERRORS        the errno values the comment names, each with its
                  sentence, and the errp convention for Error ** parameters
    THREAD SAFETY the thread tag ("Any thread.", "Loop thread only."...)
                  and what it means
    SEE ALSO      the functions the comment names, the others of its
                  section of the header, aioloop(7)

A comment that documents several names ("a / b(x) - ..." or one comment
over a run of macros) gives one page; the other names become ".so" links
to it. aioloop(7) is man/aioloop.7.in with @HEADERS@ replaced by one
subsection per header (its summary and its pages).

Macros of headers that export no function (atomic.h, queue.h,
compiler.h) get no page: their names are generic (barrier, likely,
QLIST_*) and would collide with other packages' pages; the Doxygen
reference documents them.

Usage:
  gen-man.py [--srcdir DIR] --outdir DIR [--version V]
      writes DIR/man3/*.3 and DIR/man7/aioloop.7 (both directories are
      emptied first); warnings on stderr, among them every public symbol
      without a documentation comment (no page: the man-pages test of
      make check fails); with --strict such a symbol makes the exit
      status 1
  gen-man.py [--srcdir DIR] --list
      prints "page name kind header" for every name that gets a page or
      a link (page == name for a page, the target page for a link)
  gen-man.py [--srcdir DIR] --inputs
      prints the files the pages are made from (for the build system)

The date on the pages is $SOURCE_DATE_EPOCH (set by dpkg-buildpackage),
else the newest modification time of the inputs.
"""
import argparse
import datetime
import errno as errno_mod
import glob
import importlib.util
import os
import re
import shutil
import sys

IDENT = r"[A-Za-z_]\w*"

# What each thread tag means, for the THREAD SAFETY section (the wording of
# docs/index.md, "Reading the reference").
TAG_MEANING = [
    (r"^Any thread, async-signal-safe",
     "May be called from any thread, concurrently, and from a signal "
     "handler."),
    (r"^Any thread",
     "May be called from any thread, concurrently."),
    (r"^Loop thread",
     "Only from the thread that runs the context's aio_poll() (inside its "
     "callbacks, or between calls), or while holding the context with "
     "aio_context_acquire()."),
    (r"^Coroutine context only",
     "Only from inside a coroutine (a coroutine_fn function)."),
    (r"^Main thread",
     "Only from the main-loop thread, the thread that called "
     "qemu_init_main_loop()."),
]


def load_filter(srcdir):
    """docs/kerneldoc-filter.py as a module: its patterns are the rules."""
    path = os.path.join(srcdir, "docs", "kerneldoc-filter.py")
    spec = importlib.util.spec_from_file_location("kerneldoc_filter", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class Doc:
    """One documentation comment and the declaration(s) it documents."""

    def __init__(self, kind, names, header, protos, text, section, line,
                 path):
        self.kind = kind            # 'function', 'variable' or 'macro'
        self.names = names          # documented names, page name first
        self.header = header        # "aioloop/aio.h"
        self.protos = protos        # [(name, prototype text)]
        self.text = text            # comment lines (markers stripped)
        self.section = section      # the header section it belongs to
        self.line = line
        self.path = path
        self.thread = ""            # filled by split_comment
        self.returns = []
        self.body = []
        self.summary = ""
        self.prefix_names = []

    @property
    def page(self):
        return self.names[0]


# ---------------------------------------------------------------------
# Reading the headers

def comment_text(kdf, block):
    """The text lines of a block comment, markers removed, indentation
    (relative to the comment) kept."""
    out = []
    for k, line in enumerate(block):
        if k == 0:
            text = line[line.index("/*") + 2:]
            if text.startswith("*"):
                text = text[1:]
            if text.startswith(" "):
                text = text[1:]
        else:
            text = line[kdf.content_start(line):]
        text = text.rstrip()
        if text.endswith("*/"):
            text = text[:-2].rstrip()
        out.append(text)
    while out and not out[0].strip():
        out.pop(0)
    while out and not out[-1].strip():
        out.pop()
    return out


def join_decl(lines, j, stop):
    """The declaration starting at lines[j], joined up to the first
    character in stop at parenthesis depth 0."""
    text = ""
    depth = 0
    k = j
    while k < len(lines):
        line = re.sub(r"/\*.*?\*/", "", lines[k])
        for ch in line:
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
            elif ch in stop and depth == 0:
                return text.strip(), k
            text += ch
        text += " "
        k += 1
    return text.strip(), k


def clean_proto(text):
    """A prototype as the SYNOPSIS shows it: no export or attribute
    macros, single spaces."""
    text = re.sub(r"\bAIOLOOP_API\b", "", text)
    text = re.sub(r"\bAIOLOOP_(PRINTF|FORMAT)\s*\([^)]*\)", "", text)
    text = re.sub(r"\bAIOLOOP_(WARN_UNUSED|NORETURN)\b", "", text)
    text = re.sub(r"__attribute__\s*\(\(.*?\)\)", "", text)
    text = re.sub(r"\bG_GNUC_\w+(\s*\([^)]*\))?", "", text)
    text = re.sub(r"^\s*static\s+inline\b", "", text)
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\(\s+", "(", text)
    text = re.sub(r"\s+\)", ")", text)
    text = re.sub(r"\s+,", ",", text)
    return text


def exports_functions(lines):
    """Whether the header declares library functions (AIOLOOP_API): then
    its call-like macros (aio_bh_new, error_setg) get pages too."""
    return any(re.match(r"^\s*AIOLOOP_API\b(?!\s+extern\b)", l)
               for l in lines)


def parse_header(kdf, path, rel):
    """Every documented function, variable and (in headers that export
    functions) function-like macro of one header; and the header's
    summary line."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    docs = []
    summary = ""
    undocumented = []
    allow_macros = exports_functions(lines)
    n = len(lines)
    i = 0
    first = True
    section = ""
    documented_lines = set()
    while i < n:
        line = lines[i]
        if re.match(r"^\s*/\*", line):
            j = i
            while "*/" not in lines[j][lines[j].index("/*") + 2 if j == i
                                       else 0:]:
                j += 1
                if j >= n:
                    j = n - 1
                    break
            block = lines[i:j + 1]
            nxt = lines[j + 1] if j + 1 < n else ""
            body = " ".join(block)
            if first:
                text = comment_text(kdf, block)
                if text:
                    m = kdf.FILE_PREFIX.match(text[0].strip())
                    first_para = []
                    for t in text:
                        if not t.strip():
                            break
                        first_para.append(t.strip())
                    s = " ".join(first_para)
                    summary = s[m.end():] if m else s
            elif re.match(r"^[\s/*=-]*$", body):
                pass                # a separator rule
            elif not kdf.NOT_DECL.match(nxt):
                doc = make_doc(kdf, lines, i, j, block, rel, section, path,
                               allow_macros)
                if doc:
                    docs.append(doc)
                    documented_lines.add(j + 1)
            else:
                # A section title (or a plain remark between groups).
                text = [t.strip() for t in comment_text(kdf, block)]
                if text:
                    section = text[0]
            first = False
            i = j + 1
            continue
        if line.strip():
            first = False
        if re.match(r"^\s*AIOLOOP_API\b", line) and i not in documented_lines:
            decl, _ = join_decl(lines, i, ";{")
            m = re.search(r"(%s)\s*\(" % IDENT, clean_proto(decl))
            if not m:
                m = re.search(r"(%s)\s*(\[[^\]]*\])?\s*$" % IDENT,
                              clean_proto(decl))
            undocumented.append((path, i + 1, m.group(1) if m else decl))
        i += 1
    return docs, summary, undocumented


def make_doc(kdf, lines, i, j, block, rel, section, path, allow_macros):
    decl_line = j + 1
    # Look past #if lines, as the filter does.
    while decl_line < len(lines) and \
            re.match(r"^\s*#\s*(if|ifdef|ifndef)\b", lines[decl_line]):
        decl_line += 1
    text = comment_text(kdf, block)
    nxt = lines[decl_line]
    if kdf.is_function_decl(lines, decl_line):
        decl, _ = join_decl(lines, decl_line, ";{")
        proto = clean_proto(decl)
        m = re.search(r"(%s)\s*\((?=[^()]*(\([^()]*\)[^()]*)*\)\s*$)" % IDENT,
                      proto)
        name = m.group(1) if m else kdf.decl_name(lines, decl_line)
        kind = "function"
        protos = [(name, proto + ";")]
    elif re.match(r"^\s*AIOLOOP_API\s+extern\b", nxt):
        decl, _ = join_decl(lines, decl_line, ";")
        proto = clean_proto(decl)
        name = re.search(r"(%s)\s*(\[[^\]]*\])?\s*$" % IDENT, proto).group(1)
        kind = "variable"
        protos = [(name, proto + ";")]
    elif re.match(r"^\s*#\s*define\s+%s\(" % IDENT, nxt) and allow_macros:
        kind = "macro"
        protos = []
        end = kdf.define_run_end(lines, decl_line) or decl_line + 1
        k = decl_line
        while k < end:
            m = re.match(r"^\s*#\s*define\s+(%s)\(([^)]*)\)" % IDENT,
                         lines[k])
            if m:
                args = ", ".join(a.strip() for a in m.group(2).split(","))
                protos.append((m.group(1),
                               "#define %s(%s)" % (m.group(1), args)))
            while lines[k].rstrip().endswith("\\"):
                k += 1
            k += 1
        if not protos:
            return None
        name = protos[0][0]
    else:
        return None
    names = [p[0] for p in protos]
    doc = Doc(kind, names, rel, protos, text, section, i + 1, path)
    split_comment(kdf, doc)
    # Names the comment's prefix gives beyond the declared ones are not
    # added: a page is only for what the header declares.
    return doc


# ---------------------------------------------------------------------
# Splitting a comment into summary, body, returns, thread tag

RETURNS_ANY = re.compile(r"(?<![\w\\])Returns:\s*")
RETURNS_START = re.compile(r"^Returns\s")


def first_clause(text):
    """The NAME line's summary: text up to the first ". ", "; " or ": "
    outside parentheses (not the dots of "i.e." and "e.g.")."""
    depth = 0
    for k, ch in enumerate(text):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth = max(0, depth - 1)
        elif ch in ".;:" and depth == 0 and \
                (k + 1 == len(text) or text[k + 1] == " "):
            if ch == "." and re.search(r"(\bi\.e|\be\.g|\betc)$", text[:k]):
                continue
            return text[:k]
    return text.rstrip(".;:")


def split_comment(kdf, doc):
    text = list(doc.text)
    # The "name - " prefix.
    for k, line in enumerate(text):
        if not line.strip():
            continue
        # (+ " ": a prefix may end its line, "a / b(x) -", text below)
        m = kdf.NAME_PREFIX.match(line.strip() + " ")
        if m:
            doc.prefix_names = re.findall(IDENT + r"(?=\s*(?:\(|/|\s-|$))",
                                          m.group("names"))
            lead = line[:len(line) - len(line.lstrip())]
            text[k] = (lead + (line.strip() + " ")[m.end():]).rstrip()
            if not text[k].strip():
                del text[k]
        break
    # The thread tag: the last sentence that starts like one.
    thread = ""
    for k in range(len(text) - 1, -1, -1):
        hits = list(kdf.THREAD_TAG.finditer(text[k].lstrip()))
        if hits:
            lead = len(text[k]) - len(text[k].lstrip())
            pos = lead + hits[-1].start()
            thread = " ".join([text[k][pos:].strip()] +
                              [t.strip() for t in text[k + 1:]]).strip()
            text = text[:k] + ([text[k][:pos].rstrip()]
                               if text[k][:pos].strip() else [])
            break
    doc.thread = thread
    # The Returns paragraph.
    ret_at = None
    for k, line in enumerate(text):
        m = RETURNS_ANY.search(line)
        if m:
            ret_at = (k, m.start(), m.end())
            break
        prev_blank = k == 0 or not text[k - 1].strip()
        if prev_blank and RETURNS_START.match(line.strip()):
            lead = len(line) - len(line.lstrip())
            ret_at = (k, lead, lead)
            break
    returns = []
    if ret_at:
        k, start, end = ret_at
        head = text[k][:start].rstrip()
        rest = text[k][end:].strip()
        e = k + 1
        while e < len(text) and text[e].strip():
            e += 1
        returns = ([rest] if rest else []) + [t.strip() for t in text[k + 1:e]]
        text = text[:k] + ([head] if head.strip() else []) + text[e:]
    doc.returns = returns
    while text and not text[-1].strip():
        text.pop()
    doc.body = text
    # The summary: the first sentence of the first paragraph (NAME line).
    para = []
    for line in text:
        if not line.strip() or re.match(kdf.PARAM, line.strip()):
            break
        para.append(line.strip())
    doc.summary = first_clause(" ".join(para))
    summary = doc.summary
    if not summary and returns:
        summary = "return " + returns[0].rstrip(".")
    # NAME lines start in lower case: a comment without a "name - " prefix
    # starts a sentence ("Pass &error_abort ..." -> "pass ...").
    if not doc.prefix_names and re.match(r"^[A-Z][a-z]+\b", summary):
        summary = summary[0].lower() + summary[1:]
    doc.summary = summary


# ---------------------------------------------------------------------
# troff

def esc(text):
    """Escape plain text for troff (no markup)."""
    text = text.replace("\\", "\\e")
    text = re.sub(r"(?<![\w\\-])-(?=[0-9A-Za-z.])", r"\\-", text)
    out = []
    for ch in text:
        if ord(ch) > 126:
            out.append("\\[u%04X]" % ord(ch))
        else:
            out.append(ch)
    return "".join(out)


def line_start(text):
    """Protect a line that would start with a control character."""
    if text.startswith((".", "'")):
        return "\\&" + text
    return text


class Markup:
    """Inline markup: @param in italics, known functions in bold (and
    remembered for SEE ALSO), *emphasis* in italics."""

    def __init__(self, pages, params=()):
        self.pages = pages          # name -> page (every documented name)
        self.params = set(params)
        self.refs = []

    def __call__(self, text):
        out = []
        pos = 0
        pat = re.compile(
            r"@(?P<param>%s)"
            r"|(?P<func>%s)(?=\(\))"
            r"|(?<![\w*])\*(?P<em>[A-Za-z][A-Za-z' -]{0,40}[A-Za-z])\*(?![\w*])"
            % (IDENT, IDENT))
        for m in pat.finditer(text):
            out.append(esc(text[pos:m.start()]))
            if m.group("param"):
                out.append("\\fI%s\\fP" % esc(m.group("param")))
            elif m.group("func"):
                name = m.group("func")
                if name in self.pages:
                    out.append("\\fB\\%%%s\\fP" % esc(name))
                    if name not in self.refs:
                        self.refs.append(name)
                else:
                    out.append(esc(name))
            else:
                out.append("\\fI%s\\fP" % esc(m.group("em")))
            pos = m.end()
        out.append(esc(text[pos:]))
        return "".join(out)


def blocks(kdf, lines):
    """Group comment lines into ('para', text), ('param', names, text),
    ('verbatim', lines) and ('item', text) blocks."""
    result = []
    cur = None

    def flush():
        nonlocal cur
        if cur:
            result.append(cur)
        cur = None

    param_re = re.compile(r"^(%s)\s*" % kdf.PARAM)
    for line in lines:
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if not stripped:
            flush()
            continue
        m = param_re.match(stripped)
        if m and indent <= 1:
            flush()
            names = re.findall(IDENT, m.group(1))
            cur = ["param", names, stripped[m.end():]]
            continue
        if cur and cur[0] == "param":
            cur[2] += " " + stripped
            continue
        if indent >= 2 and re.match(r"^[-*] ", stripped):
            flush()
            cur = ["item", stripped[2:], indent]
            continue
        if cur and cur[0] == "item" and indent > cur[2]:
            cur[1] += " " + stripped
            continue
        if indent >= 2:
            if not (cur and cur[0] == "verbatim"):
                flush()
                cur = ["verbatim", []]
            cur[1].append(line)
            continue
        if cur and cur[0] == "para":
            cur[1] += " " + stripped
        else:
            flush()
            cur = ["para", stripped]
    flush()
    # Split parameters written on one line: "@cb: the callback, @opaque: ..."
    # (the filter's rule: after a comma or semicolon, inside the list).
    out = []
    split_re = re.compile(r"(?<=[;,])\s+(%s)" % kdf.PARAM)
    for b in result:
        if b[0] != "param":
            out.append(b)
            continue
        names, text = b[1], b[2]
        pos = 0
        for m in split_re.finditer(text):
            out.append(["param", names, text[pos:m.start()]])
            names = re.findall(IDENT, m.group(1))
            pos = m.end()
        out.append(["param", names, text[pos:].strip()])
    for b in out:
        if b[0] == "param":
            b[2] = re.sub(r"[,;]$", ".", b[2].strip())
    return out


def render_blocks(kdf, lines, mk):
    out = []
    in_params = False
    for b in blocks(kdf, lines):
        if b[0] == "para":
            if in_params:
                in_params = False
            out += [".PP", line_start(mk(capitalise(b[1], mk.params)))]
        elif b[0] == "param":
            if not in_params:
                out.append(".PP")
                in_params = True
            out.append(".TP")
            out.append(line_start(", ".join("\\fI%s\\fP" % esc(n)
                                             for n in b[1])))
            out.append(line_start(mk(capitalise(b[2], mk.params))))
        elif b[0] == "item":
            out += [".IP \\(bu 2", line_start(mk(b[1]))]
        else:
            base = min(len(l) - len(l.lstrip()) for l in b[1])
            out += [".PP", ".RS", ".nf"]
            out += [line_start(mk(l[base:])) if l.strip() else "" for l in b[1]]
            out += [".fi", ".RE"]
    return out


def capitalise(text, params=()):
    """Upper-case a leading plain word ("run" -> "Run"); not an identifier,
    nor a parameter named without "@" ("name is shown by ...")."""
    m = re.match(r"^([a-z]+)(?=[\s,.;:]|$)", text)
    if m and m.group(1) not in params:
        return text[0].upper() + text[1:]
    return text


def split_args(args):
    parts = []
    depth = 0
    cur = ""
    for ch in args:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


def arg_name(arg):
    m = re.search(r"\(\s*\*\s*(%s)\s*\)" % IDENT, arg)
    if m:
        return m.group(1)
    if arg in ("void", "...") or not re.search(r"[\s*]%s\s*(\[[^\]]*\])?$"
                                               % IDENT, arg):
        return None
    return re.search(r"(%s)\s*(\[[^\]]*\])?$" % IDENT, arg).group(1)


def synopsis_line(proto, name, kind):
    """A prototype with the parameter names in italics, wrapped at commas
    so that no line is much wider than 72 columns."""
    if kind == "variable":
        return ["\\fB%s\\fP" % esc(proto)]
    if kind == "macro":
        m = re.match(r"^#define (%s)\((.*)\)$" % IDENT, proto)
        head = "#define %s(" % m.group(1)
        args = split_args(m.group(2))
        segs = [[("B", head)]]
        for k, a in enumerate(args):
            segs[-1].append(("I", a))
            if k < len(args) - 1:
                segs[-1].append(("B", ", "))
        segs[-1].append(("B", ")"))
        return [fmt_segs(segs[0])]
    m = re.search(r"\b%s\s*\(" % re.escape(name), proto)
    head = proto[:m.end()]
    inner = proto[m.end():proto.rindex(")")]
    tail = proto[proto.rindex(")"):]
    args = split_args(inner)
    rendered = []
    for a in args:
        nm = arg_name(a)
        if nm:
            at = a.rindex(nm) if "(*" not in a else a.index(nm)
            rendered.append([("B", a[:at]), ("I", nm), ("B", a[at + len(nm):])])
        else:
            rendered.append([("B", a)])
    # Lay out: everything on one line if it fits, else one argument per
    # line after the first, aligned under the first argument.
    plain = head + ", ".join(a for a in args) + tail
    if len(plain) <= 72:
        segs = [("B", head)]
        for k, r in enumerate(rendered):
            segs += r
            if k < len(rendered) - 1:
                segs.append(("B", ", "))
        segs.append(("B", tail))
        return [fmt_segs(segs)]
    lines = []
    pad = " " * len(head)
    cur = [("B", head)]
    width = len(head)
    for k, (a, r) in enumerate(zip(args, rendered)):
        piece = a + ("," if k < len(args) - 1 else tail)
        if width + len(piece) > 72 and width > len(pad):
            lines.append(fmt_segs(cur))
            cur = [("B", pad)]
            width = len(pad)
        cur += r
        cur.append(("B", "," if k < len(args) - 1 else tail))
        width += len(piece)
        if k < len(args) - 1:
            cur.append(("B", " "))
            width += 1
    lines.append(fmt_segs(cur))
    return lines


def fmt_segs(segs):
    out = []
    for font, s in segs:
        if not s:
            continue
        out.append("\\f%s%s\\fP" % (font, esc(s)))
    text = "".join(out)
    # Trailing spaces inside a bold run at a line end are invisible noise.
    text = re.sub(r" \\fP$", r"\\fP", text)
    return line_start(text)


# ---------------------------------------------------------------------
# Pages

def th(name, section, date, version):
    return ['.\\" Generated by scripts/gen-man.py from the header comments;'
            ' do not edit.',
            '.TH %s %s %s "aioloop %s" "aioloop Manual"'
            % (esc(name), section, date, version)]


def sentences(text):
    return [s for s in re.split(r"(?<=\.)\s+(?=[A-Z(])", text) if s]


ERRNO = r"\b(E[A-Z0-9]{2,})\b"


def errno_groups(text):
    """[(codes, explanation)] for the errno names in text: "EAGAIN: why"
    gives EAGAIN its own explanation; other names share their sentence."""
    groups = []
    seen = set()
    for s in sentences(text):
        codes = []
        for m in re.finditer(ERRNO, s):
            c = m.group(1)
            if not hasattr(errno_mod, c) or c in seen:
                continue
            seen.add(c)
            own = re.match(r":\s*([^;)]+)", s[m.end():])
            if own:
                groups.append(([c], capitalise(own.group(1).strip()) + "."))
            else:
                codes.append(c)
        if codes:
            groups.append((codes, s))
    return groups


def resolve_same(doc, prev):
    """'Same threads.' / 'As above.': the previous function's tag."""
    if re.match(r"^Same threads\b", doc.thread) and prev is not None:
        return ("Same threads as \\fB%s\\fP(): " % esc(prev.page),
                prev.thread)
    return ("", doc.thread)


def render_page(kdf, doc, pages, siblings, date, version, prev_in_section):
    params = set()
    for _, proto in doc.protos:
        inner = proto[proto.find("(") + 1:proto.rfind(")")]
        for a in split_args(inner):
            nm = arg_name(a) if doc.kind != "macro" else a.strip()
            if nm:
                params.add(nm)
    mk = Markup(pages, params)
    out = th(doc.page, "3", date, version)
    # NAME
    out += [".SH NAME",
            "%s \\- %s" % (", ".join(esc(n) for n in doc.names),
                           Markup(pages)(doc.summary or "(undocumented)")
                           .replace("\\fB", "").replace("\\fI", "")
                           .replace("\\fP", "").replace("\\%", ""))]
    # SYNOPSIS
    out += [".SH SYNOPSIS", ".nf", ".B #include <%s>" % include_name(doc.header),
            ".PP"]
    for name, proto in doc.protos:
        out += synopsis_line(proto, name, doc.kind)
    out += [".fi"]
    out += [".SH LIBRARY",
            "aioloop (\\fIlibaioloop\\fP, \\fI\\-laioloop\\fP;"
            " \\fBpkg\\-config \\-\\-cflags \\-\\-libs %s\\fP)"
            % esc(pc_module(doc.header)).replace("-", "\\-")]
    if doc.kind == "macro":
        out.append(".PP")
        out.append("This is a macro: it needs the header, not the library."
                   if len(doc.names) == 1 else
                   "These are macros: they need the header, not the library.")
    # DESCRIPTION
    out += [".SH DESCRIPTION"]
    body = render_blocks(kdf, doc.body, mk)
    if body and body[0] == ".PP":
        body = body[1:]
    out += body or ["Not documented."]
    # RETURN VALUE
    out += [".SH RETURN VALUE"]
    void = (doc.kind == "function" and
            re.match(r"^(static inline )?void (coroutine_fn )?%s\(" %
                     re.escape(doc.page), doc.protos[0][1]))
    if doc.returns:
        out.append(line_start(mk(capitalise(" ".join(doc.returns),
                                            params))))
    elif doc.kind == "variable":
        out.append("Not applicable (a variable).")
    elif void:
        out.append("None.")
    elif doc.kind == "function":
        # A getter's summary names what it returns ("the context @co last
        # ran in", "whether @ts is armed"); "as laio_submit()" refers on.
        s = doc.summary
        m = re.match(r"^[Aa]s (%s)\(\)$" % IDENT, s)
        if m:
            out.append(line_start(mk("As for %s()." % m.group(1))))
        elif re.match(r"^(the|a|an|whether|name|current|nanoseconds|how|"
                      r"which|what)\b|^%s\(\)" % IDENT, s, re.I):
            out.append(line_start(mk("Returns %s." % (s[:1].lower() + s[1:]
                                                     if re.match(r"^[A-Z][a-z]", s)
                                                     else s))))
        else:
            out.append("See DESCRIPTION.")
    else:
        out.append("See DESCRIPTION.")
    # ERRORS: the errno values the return-value text names. Values the
    # description mentions are not errors of the call (aio_set_fd_handler
    # explains how it survives EPERM from epoll), so they stay there.
    out += [".SH ERRORS"]
    full = " ".join(t.strip() for t in doc.body + doc.returns)
    ret_text = " ".join(doc.returns)
    if ret_text and not ret_text.startswith("Returns"):
        ret_text = "Returns " + ret_text
    groups = errno_groups(ret_text)
    # (The functions of error.h handle errp themselves: error_setg...)
    has_errp = doc.header != "aioloop/error.h" and \
        any(re.search(r"\bError\s*\*\*\s*errp\b", p) for _, p in doc.protos)
    if groups:
        for codes, s in groups:
            out += [".TP", ", ".join("\\fB%s\\fP" % c for c in codes),
                    line_start(mk(s))]
    if has_errp:
        out += [".PP",
                "Failures are reported through \\fIerrp\\fP: NULL drops the "
                "error, &\\fBerror_abort\\fP aborts, &\\fBerror_fatal\\fP "
                "exits, and otherwise *\\fIerrp\\fP (NULL on entry) receives "
                "an Error the caller owns; read it with "
                "\\fBerror_get_pretty\\fP(3), free it with "
                "\\fBerror_free\\fP(3)."]
    if not groups and not has_errp:
        if re.search(r"\babort", full):
            out.append("No error is returned to the caller; the conditions "
                       "under which the process aborts are described above.")
        else:
            out.append("None.")
    # THREAD SAFETY
    out += [".SH THREAD SAFETY"]
    lead, tag = resolve_same(doc, prev_in_section)
    if tag:
        out.append(line_start(lead + mk(tag)))
        for pat, meaning in TAG_MEANING:
            if re.match(pat, tag):
                out += [".PP", line_start(Markup(pages)(meaning))]
                break
    elif doc.kind == "variable":
        out.append("Reading the variable's address is safe from any thread.")
    elif doc.kind == "macro":
        # (The docs build requires a tag of functions only.)
        out.append("Not stated for this macro; see DESCRIPTION and the "
                   "pages of the functions it uses.")
    else:
        out.append("Not documented.")
    # SEE ALSO
    refs = [r for r in mk.refs if pages.get(r) != doc.page]
    seen_pages = {doc.page}
    see = []
    for r in refs + [s for s in siblings]:
        p = pages.get(r)
        if p and p not in seen_pages and r not in see:
            see.append(r)
            seen_pages.add(p)
    if has_errp and "error_get_pretty" in pages and \
            "error_get_pretty" not in see and doc.page != "error_get_pretty":
        see.append("error_get_pretty")
    out += [".SH SEE ALSO", ".ad l"]
    items = ["\\fB\\%%%s\\fP(3)" % esc(r) for r in see] + ["\\fBaioloop\\fP(7)"]
    out.append(",\n".join(items))
    out.append(".ad")
    return "\n".join(out) + "\n"


def headers_section(all_docs, summaries, pages):
    out = []
    for header in sorted(summaries):
        docs = [d for d in all_docs if d.header == header]
        if not docs:
            continue
        out.append(".SS <%s>" % include_name(header))
        out.append(line_start(Markup(pages)(capitalise(summaries[header]))))
        out += [".PP", ".ad l"]
        names = []
        for d in docs:
            names += d.names
        out.append(",\n".join("\\fB\\%%%s\\fP(3)" % esc(n) for n in names))
        out.append(".ad")
    return "\n".join(out)


def doxygen_excludes(srcdir):
    """EXCLUDE and EXCLUDE_PATTERNS of docs/Doxyfile: the man pages cover
    the headers the docs build checks, no more."""
    path = os.path.join(srcdir, "docs", "Doxyfile")
    if not os.path.exists(path):
        return [], []
    with open(path, encoding="utf-8") as f:
        text = f.read().replace("\\\n", " ")
    values = {}
    for m in re.finditer(r"^(EXCLUDE|EXCLUDE_PATTERNS)\s*\+?=(.*)$", text,
                         re.M):
        values.setdefault(m.group(1), []).extend(m.group(2).split())
    return ([os.path.normpath(os.path.join(srcdir, p))
             for p in values.get("EXCLUDE", [])],
            values.get("EXCLUDE_PATTERNS", []))


def public_headers(srcdir):
    import fnmatch
    excl, patterns = doxygen_excludes(srcdir)
    out = []
    for path in sorted(glob.glob(os.path.join(srcdir, "include", "**", "*.h"),
                                 recursive=True)):
        if any(path == e or path.startswith(e + os.sep) for e in excl):
            continue
        if any(fnmatch.fnmatch(path, p) for p in patterns):
            continue
        out.append(path)
    return out


# The QEMU-named include tree is used with its own pkg-config module, and
# its headers are included by their QEMU names.
COMPAT_DIR = "aioloop/qemu-compat/"


def include_name(rel):
    return rel[len(COMPAT_DIR):] if rel.startswith(COMPAT_DIR) else rel


def pc_module(rel):
    return "aioloop-qemu" if rel.startswith(COMPAT_DIR) else "aioloop"


def collect(srcdir):
    kdf = load_filter(srcdir)
    incdir = os.path.join(srcdir, "include")
    all_docs = []
    summaries = {}
    undocumented = []
    for path in public_headers(srcdir):
        rel = os.path.relpath(path, incdir)
        docs, summary, undoc = parse_header(kdf, path, rel)
        all_docs += docs
        summaries[rel] = summary
        undocumented += undoc
    # Who gets a name: a library function or variable before a macro of
    # the same name (the QEMU-named tree spells some functions of other
    # eras as macros), the aioloop headers before the QEMU-named tree,
    # then the first comment.
    def rank(d):
        return (d.kind == "macro", d.header.startswith(COMPAT_DIR))
    pages = {}
    for d in sorted(all_docs, key=rank):
        for n in d.names:
            if n in pages:
                other = pages[n][1]
                if rank(other) == rank(d):
                    sys.stderr.write("%s:%d: warning: '%s' is documented "
                                     "twice (also on page %s)\n"
                                     % (d.path, d.line, n, other.page))
                continue
            pages[n] = (d.names[0], d)
    kept = []
    for d in all_docs:
        names = [n for n in d.names if pages[n][1] is d]
        if not names:
            continue
        d.protos = [p for p in d.protos if p[0] in names]
        d.names = names
        kept.append(d)
    all_docs = kept
    pages = {n: d.page for n, (_, d) in pages.items()}
    return kdf, all_docs, summaries, undocumented, pages


def input_files(srcdir):
    files = public_headers(srcdir)
    files += [os.path.join(srcdir, "docs", "kerneldoc-filter.py"),
              os.path.join(srcdir, "docs", "Doxyfile"),
              os.path.join(srcdir, "man", "aioloop.7.in")]
    return [f for f in files if os.path.exists(f)]


def page_date(srcdir):
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        t = int(epoch)
    else:
        t = max(os.path.getmtime(f) for f in input_files(srcdir))
    return datetime.datetime.fromtimestamp(
        t, datetime.timezone.utc).strftime("%Y-%m-%d")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--srcdir", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), ".."))
    ap.add_argument("--outdir")
    ap.add_argument("--version", default="")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--inputs", action="store_true")
    ap.add_argument("--strict", action="store_true",
                    help="exit 1 when a public symbol has no comment")
    args = ap.parse_args()
    srcdir = os.path.abspath(args.srcdir)
    if args.inputs:
        print("\n".join(input_files(srcdir)))
        return 0
    kdf, all_docs, summaries, undocumented, pages = collect(srcdir)
    if args.list:
        kinds = {}
        for d in all_docs:
            for n in d.names:
                kinds[n] = (d.kind, d.header)
        for n in sorted(pages):
            print(pages[n], n, *kinds[n])
        return 0
    if not args.outdir:
        ap.error("--outdir, --list or --inputs is required")
    status = 0
    for path, line, name in undocumented:
        sys.stderr.write("%s:%d: %s: public symbol '%s' has no "
                         "documentation comment, so no man page\n"
                         % (path, line, "error" if args.strict else "warning",
                            name))
        status = 1 if args.strict else 0
    date = page_date(srcdir)
    man3 = os.path.join(args.outdir, "man3")
    man7 = os.path.join(args.outdir, "man7")
    for d in (man3, man7):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
    prev = {}
    by_section = {}
    for d in all_docs:
        by_section.setdefault((d.header, d.section), []).append(d)
    for d in all_docs:
        if pages.get(d.page) != d.page:
            continue            # documented twice: warned about above
        sib_docs = by_section[(d.header, d.section)]
        siblings = [s.page for s in sib_docs if s is not d]
        if len(siblings) > 12:
            # A long section: only the neighbours.
            k = sib_docs.index(d)
            siblings = [s.page for s in sib_docs[max(0, k - 3):k + 4]
                        if s is not d]
        p = prev.get((d.header, d.section))
        text = render_page(kdf, d, pages, siblings, date, args.version, p)
        prev[(d.header, d.section)] = d
        with open(os.path.join(man3, d.page + ".3"), "w",
                  encoding="ascii") as f:
            f.write(text)
        for n in d.names[1:]:
            if pages.get(n) != d.page:
                continue
            with open(os.path.join(man3, n + ".3"), "w",
                      encoding="ascii") as f:
                f.write(".so man3/%s.3\n" % d.page)
        if not d.thread and d.kind == "function":
            sys.stderr.write("%s:%d: warning: '%s' has no thread tag\n"
                             % (d.path, d.line, d.page))
    tmpl_path = os.path.join(srcdir, "man", "aioloop.7.in")
    with open(tmpl_path, encoding="utf-8") as f:
        tmpl = f.read()
    seven = (tmpl.replace("@VERSION@", args.version)
             .replace("@DATE@", date)
             .replace("@HEADERS@", headers_section(all_docs, summaries,
                                                   pages)))
    with open(os.path.join(man7, "aioloop.7"), "w", encoding="ascii") as f:
        f.write(seven)
    return status


if __name__ == "__main__":
    sys.exit(main())
