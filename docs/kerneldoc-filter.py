#!/usr/bin/env python3
"""Doxygen INPUT_FILTER: read aioloop's man-page style header comments.

The public headers document every symbol in the kernel-doc/QEMU style:

    /**
     * aio_poll - run one iteration of @ctx's event loop.
     * @blocking: if true, wait until ...
     * Returns: true if progress was made ...
     * Loop thread only.
     */

Some older headers use a plain "/*" opener and name the parameters
without "@". Doxygen understands neither the "name - " prefix, nor
"@param:" lists, nor "Returns:". Instead of rewriting the headers in
Doxygen's own dialect (which would make them harder to read as plain C),
this filter translates them on the fly, line for line (the line count never
changes, so Doxygen's warnings point at the real header lines):

  - the opening comment of a header becomes its \\file documentation;
  - a block comment directly followed by a declaration (no blank line in
    between) is that declaration's documentation, "/*" or "/**" alike;
    the leading "name - " (or "name(args) - ") is dropped, since Doxygen
    prints the name itself;
  - "@name:" starts a parameter (\\param), other "@name" refer to one (\\p);
  - "Returns:" (or a paragraph starting with "Returns ") is \\return;
  - the thread tag ("Any thread.", "Loop thread only.", "Coroutine
    context only." ...) gets its own "Threads:" paragraph (\\threads alias);
  - a comment after a member on the same line documents that member
    ("/**<");
  - one comment over a run of #defines (no blank line or comment between
    them) documents each of them (the others copy the first's).

Reported on stderr ("file:line: warning: ..."), which the docs build
treats as a failure like any Doxygen warning: a documentation comment
whose name does not match the declaration that follows it; an exported
function whose comment has no thread tag; a header that does not open
with a comment (Doxygen would not check the members of such a file).

Usage: kerneldoc-filter.py FILE  (writes the translated FILE to stdout)
"""
import re
import sys

IDENT = r"[A-Za-z_]\w*"
# "name - ", "name() - ", "name(a, b) - ", "a(x) / b(y) - ", "fetch_add/sub(p) - "
NAME_PREFIX = re.compile(
    r"^(?P<names>%s(?:/\w+)*(?:\([^)]*\))?"
    r"(?:\s*/\s*%s(?:/\w+)*(?:\([^)]*\))?)*)\s+-\s+" % (IDENT, IDENT))
FILE_PREFIX = re.compile(r"^(?P<path>aioloop(?:/[\w.-]+)?\.h)\s+-\s+")
THREAD_TAG = re.compile(
    r"(?:(?<=^)|(?<=\. )|(?<=\.  ))"
    r"(?=Any thread|Loop thread|Main thread|Coroutine context only"
    r"|Same threads|The [\w']+(?: [\w']+)* thread)")
NOT_DECL = re.compile(
    r"^\s*($|/\*|//|\*|#\s*include|#\s*endif|#\s*else|#\s*ifdef __cplusplus"
    r"|\}|extern \"C\")")
DECL_NAME = [
    re.compile(r"^\s*#\s*define\s+(%s)" % IDENT),
    re.compile(r"\btypedef\b.*?\(\s*\*\s*(%s)\s*\)\s*\(" % IDENT),
    re.compile(r"\btypedef\b(?!.*\{).*?\b(%s)\s*\(" % IDENT),
    re.compile(r"\btypedef\s+(?:struct|enum|union)\s+(%s)\s*\{" % IDENT),
    re.compile(r"\btypedef\b(?!.*[{(]).*?\b(%s)\s*;" % IDENT),
    re.compile(r"\b(%s)\s*\(" % IDENT),
    re.compile(r"\b(%s)\s*;" % IDENT),
]


def content_start(line):
    """Index where the text of a comment line starts (after '/*', ' * ')."""
    m = re.match(r"^\s*(?:/\*\*?|\*(?!/))?\s?", line)
    return m.end() if m else 0


def decl_name(lines, j):
    """Name declared on lines[j] (joining a few lines for long prototypes)."""
    text = " ".join(lines[j:j + 3])
    if re.match(r"^\s*#\s*(if|ifdef|ifndef)\b", lines[j]):
        # A conditional around the definition: look past it.
        k = j + 1
        while k < len(lines) and re.match(r"^\s*#\s*(if|ifdef|ifndef)\b",
                                          lines[k]):
            k += 1
        return decl_name(lines, k) if k < len(lines) else None
    for pat in DECL_NAME:
        m = pat.search(text)
        if m:
            return m.group(1)
    return None


def define_run_end(lines, j):
    """If lines[j:] is a run of two or more #defines (no blank line or
    comment between them), the index of the line after the run; else None."""
    count = 0
    k = j
    while k < len(lines) and re.match(r"^\s*#\s*define\b", lines[k]):
        count += 1
        while lines[k].rstrip().endswith("\\"):
            k += 1
        k += 1
    if count >= 2:
        return k
    return None


def is_function_decl(lines, j):
    """Whether lines[j] starts a public function (exported prototype or
    static inline definition)."""
    return bool(re.match(r"^\s*(?:AIOLOOP_API\b(?!\s+extern\b)|static\s+inline\b)"
                         r"[^;]*\(",
                         " ".join(lines[j:j + 3])))


def capitalise(text):
    """Upper-case a leading plain word ("run" -> "Run"), not identifiers."""
    m = re.match(r"^([a-z]+)(?=[\s,.;:]|$)", text)
    if m:
        return text[0].upper() + text[1:]
    return text


PARAM = r"@%s(?:\s*,\s*@%s)*:" % (IDENT, IDENT)


def convert_refs(text, in_params=False):
    """@name: -> \\param name; "@a, @b:" -> \\param a,b; other @name -> \\p name.

    A line that starts with "@name:" starts the parameter list, which lasts
    until a blank line; inside it, "@other:" after a comma or semicolon
    starts another parameter ("@cb: the callback, @opaque: its argument").
    Elsewhere "@ctx:" is prose ("enter @co in @ctx: at once ...")."""
    def param(m):
        return "\\param " + ",".join(re.findall(IDENT, m.group(0)))
    if re.match(PARAM, text):
        text = re.sub("^" + PARAM, param, text)
        in_params = True
    if in_params:
        text = re.sub(r"(?<=[;,] )" + PARAM, param, text)
    text = re.sub(r"@(%s)" % IDENT, r"\\p \1", text)
    return text


def translate_doc(block, next_decl, path, first_line_no, group=False,
                  is_function=False):
    out = list(block)
    # Opener: "/*" -> "/**" (leave "/**" and "/*!" alone).
    out[0] = re.sub(r"/\*(?![*!])", "/**", out[0], count=1)
    # The "name - " prefix on the first line that has text.
    for k, line in enumerate(out):
        start = content_start(line)
        text = line[start:]
        if not text.strip() or text.strip() == "*/":
            continue
        m = NAME_PREFIX.match(text)
        if m:
            names = re.findall(IDENT, m.group("names"))
            if next_decl and names and next_decl not in names and \
                    not any(next_decl.startswith(n) for n in names):
                sys.stderr.write(
                    "%s:%d: warning: comment documents '%s' but the "
                    "declaration below it is '%s'\n"
                    % (path, first_line_no + k, names[0], next_decl))
            if not group:
                out[k] = line[:start] + capitalise(text[m.end():])
        break
    prev_blank = True
    in_params = False
    for k, line in enumerate(out):
        start = content_start(line)
        head, text = line[:start], line[start:]
        stripped = text.strip()
        is_blank = stripped in ("", "*/")
        if is_blank or re.match(r"^Returns\b", stripped):
            in_params = False
        elif re.match(PARAM, stripped):
            in_params = True
        text = convert_refs(text, in_params)
        text = re.sub(r"(?<![\w\\])Returns:\s*", r"\\return ", text)
        if prev_blank and re.match(r"^Returns\s", text):
            text = "\\return " + text[len("Returns "):]
        out[k] = head + text
        prev_blank = is_blank
    # The thread tag: the last sentence that starts like one.
    for k in range(len(out) - 1, -1, -1):
        start = content_start(out[k])
        text = out[k][start:]
        hits = list(THREAD_TAG.finditer(text))
        if hits:
            pos = hits[-1].start()
            out[k] = out[k][:start] + text[:pos] + "\\threads " + text[pos:]
            break
    else:
        if is_function:
            sys.stderr.write(
                "%s:%d: warning: the comment of function '%s' has no thread "
                "tag (Any thread. / Loop thread only. / ...)\n"
                % (path, first_line_no, next_decl))
    return out


def translate_file_comment(block):
    out = list(block)
    for k, line in enumerate(out):
        start = content_start(line)
        text = line[start:]
        if not text.strip():
            continue
        m = FILE_PREFIX.match(text)
        if m:
            out[k] = line[:start] + capitalise(text[m.end():])
        break
    for k, line in enumerate(out):
        start = content_start(line)
        out[k] = line[:start] + convert_refs(line[start:])
    out[0] = re.sub(r"/\*(?![*!])", "/** \\\\file", out[0], count=1)
    return out


TRAILING = re.compile(r"^(?P<code>\s*\S.*?[;,{)\w])\s*/\*(?![*!])")


def translate_trailing(line):
    """'int x;   /* note */' -> 'int x;   /**< note */'."""
    if line.rstrip().endswith("\\"):
        return line                 # inside a macro body
    if re.match(r"^\s*(#\s*(if|ifdef|ifndef|else|elif|endif|include)\b|/\*|\*)",
                line):
        return line
    m = TRAILING.match(line)
    if not m:
        return line
    pos = line.index("/*", m.end("code"))
    return line[:pos] + "/**<" + convert_refs(line[pos + 2:])


def main():
    path = sys.argv[1]
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    out = []
    i = 0
    seen_code_or_comment = False
    copy_doc = {}
    n = len(lines)
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
            if not seen_code_or_comment:
                out.extend(translate_file_comment(block))
            elif re.match(r"^[\s/*=-]*$", body):
                out.extend(block)   # a separator rule
            elif not NOT_DECL.match(nxt):
                end = define_run_end(lines, j + 1)
                doc = translate_doc(block, decl_name(lines, j + 1),
                                    path, i + 1, group=end is not None,
                                    is_function=is_function_decl(lines, j + 1))
                out.extend(doc)
                if end is not None:
                    # One comment over a run of macros documents them all:
                    # every macro after the first copies the comment.
                    first = decl_name(lines, j + 1)
                    k = j + 1
                    while k < end:
                        last = k
                        while lines[last].rstrip().endswith("\\"):
                            last += 1
                        if k != j + 1:
                            copy_doc[last] = first
                        k = last + 1
            else:
                out.extend(block)   # a section title or a plain remark
            seen_code_or_comment = True
            i = j + 1
            continue
        if line.strip() and not seen_code_or_comment:
            # Doxygen checks the members of documented files only.
            sys.stderr.write(
                "%s:%d: warning: the header does not open with a comment "
                "saying what it is (\"aioloop/name.h - ...\"), so Doxygen "
                "would not check its symbols\n" % (path, i + 1))
            seen_code_or_comment = True
        if i in copy_doc:
            out.append(line + " /**< \\copydoc %s */" % copy_doc[i])
            i += 1
            continue
        out.append(translate_trailing(line))
        i += 1
    sys.stdout.write("\n".join(out))


if __name__ == "__main__":
    main()
