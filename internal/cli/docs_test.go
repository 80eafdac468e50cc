package cli_test

import (
	"encoding/json"
	"fmt"
	"go/format"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/nsauth/nsauth/internal/cli"
	"github.com/nsauth/nsauth/internal/cli/servercmd"
)

// The documentation is the README (the front door), the pages of docs/ (by
// task), DEVELOP.md (for contributors), and the two other guides it links
// to. These tests keep every example in them true: the commands and flags
// they show exist, their links lead somewhere, DEVELOP.md's layout names
// every package, and the Go programs compile.

// moduleRoot is the repository, seen from this package's directory.
const moduleRoot = "../.."

// pendingPages may be linked before they exist: docs/configuration.md is
// generated from the settings table.
var pendingPages = map[string]bool{"docs/configuration.md": true}

// docPage is one Markdown file, by its path from the module root.
type docPage struct {
	path string // slash-separated, from the module root
	text string
}

// docPages reads every documentation page.
func docPages(t *testing.T) []docPage {
	t.Helper()
	paths := []string{"README.md", "DEVELOP.md", "SECURITY.md", "interop/README.md"}
	more, err := filepath.Glob(filepath.Join(moduleRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	if len(more) == 0 {
		t.Fatal("docs/ holds no pages")
	}
	for _, p := range more {
		paths = append(paths, "docs/"+filepath.Base(p))
	}
	var pages []docPage
	for _, p := range paths {
		raw, err := os.ReadFile(filepath.Join(moduleRoot, filepath.FromSlash(p)))
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, docPage{path: p, text: string(raw)})
	}
	return pages
}

func readPage(t *testing.T, path string) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(moduleRoot, filepath.FromSlash(path)))
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// TestREADMEGetsANewcomerToNsauth: the README says how `nsauth` gets on
// the PATH before its examples type it, keeps its two commands, and
// every `$ nsauth <command>` it shows exists. The install-before-use rule
// holds for docs/getting-started.md too, and every page's `$ nsauth
// <command>` is a command of the client.
func TestREADMEGetsANewcomerToNsauth(t *testing.T) {
	t.Parallel()
	readme := readPage(t, "README.md")
	// README lines are wrapped; compare with single spaces.
	flat := strings.Join(strings.Fields(readme), " ")
	tests := []struct{ name, want string }{
		{"run the service", "```sh\ngo run ./cmd/nsauth-server serve\n```"},
		{"run the tests", "```sh\ngo test -race ./...\n```"},
		{"install", "```sh\ngo install ./cmd/...\n```"},
		{"where it lands", "$(go env GOBIN)`, or in `$(go env GOPATH)/bin`"},
		{"the silent first build", "takes a few minutes and prints nothing meanwhile"},
		{"version", "`nsauth version`"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if !strings.Contains(readme, tc.want) && !strings.Contains(flat, strings.Join(strings.Fields(tc.want), " ")) {
				t.Errorf("README does not contain %q", tc.want)
			}
		})
	}

	typed := regexp.MustCompile(`(?m)^\$ nsauth (\S+)`)
	for _, path := range []string{"README.md", "docs/getting-started.md"} {
		text := readPage(t, path)
		install := strings.Index(text, "go install ./cmd/...")
		first := typed.FindStringIndex(text)
		if install < 0 || first == nil || first[0] < install {
			t.Errorf("%s types `$ nsauth …` (at byte %v) before saying how to install it (at byte %d)", path, first, install)
		}
	}
	known := map[string]bool{}
	for _, c := range cli.NewRootCommand(&cli.App{}, cli.ServerStandIns...).Commands() {
		known[c.Name()] = true
	}
	for _, page := range docPages(t) {
		for _, m := range typed.FindAllStringSubmatch(page.text, -1) {
			if !known[m[1]] {
				t.Errorf("%s shows `$ nsauth %s`, which is not a command", page.path, m[1])
			}
		}
	}
}

// codeBlock is a fenced block of a page.
type codeBlock struct {
	lang string
	line int // of its first line of code
	text string
}

// splitMarkdown returns a page's fenced code blocks, and its prose as
// paragraphs (lines joined by spaces, so that an inline code span wrapped
// over two lines is whole), each with the line it starts on.
func splitMarkdown(text string) (blocks []codeBlock, paragraphs []codeBlock) {
	var (
		in    bool
		fence string
		cur   codeBlock
		para  []string
		start int
	)
	flush := func() {
		if len(para) > 0 {
			paragraphs = append(paragraphs, codeBlock{line: start, text: strings.Join(para, " ")})
			para = nil
		}
	}
	for i, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if in {
			if strings.HasPrefix(trimmed, fence) && strings.Trim(trimmed, "`~") == "" {
				blocks = append(blocks, cur)
				in = false
				continue
			}
			cur.text += line + "\n"
			continue
		}
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			flush()
			fence = trimmed[:3]
			in = true
			cur = codeBlock{lang: strings.TrimSpace(strings.Trim(trimmed, "`~")), line: i + 2}
			continue
		}
		if trimmed == "" {
			flush()
			continue
		}
		if len(para) == 0 {
			start = i + 1
		}
		para = append(para, trimmed)
	}
	flush()
	return blocks, paragraphs
}

// inlineCode matches a code span: a run of backticks, text, the same run.
var inlineCode = regexp.MustCompile("(`+)([^`]+?)`+")

func codeSpans(paragraph string) []string {
	var spans []string
	for _, m := range inlineCode.FindAllStringSubmatch(paragraph, -1) {
		spans = append(spans, strings.TrimSpace(m[2]))
	}
	return spans
}

// shellLines returns the command lines of a code block: for a console
// session the lines typed after "$ ", for a script every line; lines
// continued with a backslash are joined.
func shellLines(b codeBlock) []string {
	var lines []string
	var cur string
	cont := false
	for _, line := range strings.Split(b.text, "\n") {
		if !cont {
			if b.lang == "console" {
				l := strings.TrimLeft(line, " ")
				if !strings.HasPrefix(l, "$ ") {
					continue
				}
				line = l[2:]
			}
			cur = ""
		}
		if strings.HasSuffix(line, "\\") {
			cur += strings.TrimSuffix(line, "\\") + " "
			cont = true
			continue
		}
		cont = false
		lines = append(lines, cur+line)
	}
	return lines
}

// simpleCommands splits a shell line into its simple commands, each a list
// of words: pipelines, lists and command substitutions are taken apart,
// quotes removed, comments dropped.
func simpleCommands(line string) [][]string {
	var out [][]string
	// Command substitutions first, innermost included: $( … ).
	for {
		i := strings.Index(line, "$(")
		if i < 0 {
			break
		}
		depth, j := 0, i+1
		for ; j < len(line); j++ {
			if line[j] == '(' {
				depth++
			} else if line[j] == ')' {
				depth--
				if depth == 0 {
					break
				}
			}
		}
		if j >= len(line) {
			break
		}
		out = append(out, simpleCommands(line[i+2:j])...)
		line = line[:i] + "SUBST" + line[j+1:]
	}
	var (
		words []string
		word  strings.Builder
		inW   bool
		quote byte
	)
	endWord := func() {
		if inW {
			words = append(words, word.String())
			word.Reset()
			inW = false
		}
	}
	endCmd := func() {
		endWord()
		if len(words) > 0 {
			out = append(out, words)
			words = nil
		}
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				word.WriteByte(c)
			}
		case c == '\'' || c == '"':
			quote, inW = c, true
		case c == ' ' || c == '\t':
			endWord()
		case c == '#' && !inW:
			endCmd()
			return out
		case strings.IndexByte("|;&<>`()", c) >= 0:
			endCmd()
		default:
			word.WriteByte(c)
			inW = true
		}
	}
	endCmd()
	return out
}

var envAssignment = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

// nsauthArgs finds an nsauth invocation in a simple command: the program's
// name ("nsauth" or "nsauth-server") and its arguments.
func nsauthArgs(words []string) (prog string, args []string, ok bool) {
	for len(words) > 0 && (envAssignment.MatchString(words[0]) || slices.Contains([]string{"-", "run:", "sudo", "time", "env", "nice"}, words[0])) {
		words = words[1:]
	}
	isNsauth := func(w string) bool {
		base := w[strings.LastIndex(w, "/")+1:]
		return base == "nsauth" || base == "nsauth-server"
	}
	switch {
	case len(words) == 0:
		return "", nil, false
	case isNsauth(words[0]):
		return words[0][strings.LastIndex(words[0], "/")+1:], words[1:], true
	case words[0] == "go" && len(words) > 1 && words[1] == "run":
		for i, w := range words[2:] {
			if strings.HasPrefix(w, "./cmd/") && isNsauth(w) {
				return w[strings.LastIndex(w, "/")+1:], words[i+3:], true
			}
		}
	case (words[0] == "podman" || words[0] == "docker") && len(words) > 1 && words[1] == "exec":
		rest := words[2:]
		for len(rest) > 0 && strings.HasPrefix(rest[0], "-") {
			rest = rest[1:]
		}
		if len(rest) > 2 && isNsauth(rest[1]) { // container, then the command
			return rest[1], rest[2:], true
		}
	case words[0] == "kubectl":
		if i := slices.Index(words, "--"); i >= 0 && i+1 < len(words) && isNsauth(words[i+1]) {
			return words[i+1], words[i+2:], true
		}
	}
	return "", nil, false
}

// outputNotCommands are texts that begin with nsauth's name without
// invoking it: lines it prints, and the labels SECURITY.md gives its key
// derivations. A code span quoting them is not an invocation.
var outputNotCommands = regexp.MustCompile(`^(serving|stopped|built-in|\(devel\)|\(unknown|v\d|auth request v\d|device ticket v\d)`)

// checkInvocation walks nsauth's command tree along args and reports the
// first subcommand or flag that does not exist.
func checkInvocation(full, client *cobra.Command, prog string, args []string) error {
	cmd := full
	descending := true
	path := prog
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		if strings.HasPrefix(a, "-") && len(a) > 1 && a != "SUBST" {
			name, _, hasValue := strings.Cut(a, "=")
			var f *pflag.Flag
			if strings.HasPrefix(name, "--") {
				f = lookupFlag(cmd, name[2:], false)
			} else {
				f = lookupFlag(cmd, name[1:], true)
			}
			if f == nil {
				return fmt.Errorf("`%s` has no flag %s", path, name)
			}
			if !hasValue && f.NoOptDefVal == "" && f.Value.Type() != "bool" {
				i++ // its value
			}
			continue
		}
		if !descending {
			continue
		}
		var sub *cobra.Command
		for _, c := range cmd.Commands() {
			if c.Name() == a || slices.Contains(c.Aliases, a) {
				sub = c
			}
		}
		if sub != nil {
			if cmd == full && prog == "nsauth" && !hasCommand(client, a) {
				return fmt.Errorf("`nsauth %s` is a command of nsauth-server only", a)
			}
			cmd = sub
			path += " " + a
			continue
		}
		if cmd.HasSubCommands() && !cmd.Runnable() {
			return fmt.Errorf("`%s %s`: %q is not a command of `%s`", path, a, a, path)
		}
		descending = false
	}
	return nil
}

func hasCommand(root *cobra.Command, name string) bool {
	for _, c := range root.Commands() {
		if c.Name() == name {
			return true
		}
	}
	return false
}

// lookupFlag finds a flag as the command sees it: its own, its persistent
// ones, those it inherits, and the help and version flags cobra adds.
func lookupFlag(cmd *cobra.Command, name string, short bool) *pflag.Flag {
	cmd.InitDefaultHelpFlag()
	cmd.InitDefaultVersionFlag()
	for _, fs := range []*pflag.FlagSet{cmd.Flags(), cmd.PersistentFlags(), cmd.InheritedFlags()} {
		if short {
			if f := fs.ShorthandLookup(name); f != nil {
				return f
			}
		} else if f := fs.Lookup(name); f != nil {
			return f
		}
	}
	return nil
}

// TestDocsCommandsAndFlagsExist: every `nsauth` and `nsauth-server`
// command a page shows, in a console session, a script or a code span,
// exists, with every flag given to it, and a command typed as `nsauth` is
// one the terminal client has (itself or as a stand-in for nsauth-server).
func TestDocsCommandsAndFlagsExist(t *testing.T) {
	t.Parallel()
	full := cli.NewRootCommand(&cli.App{}, servercmd.Commands...)
	full.InitDefaultHelpCmd()
	client := cli.NewRootCommand(&cli.App{}, cli.ServerStandIns...)
	checked := 0
	for _, page := range docPages(t) {
		blocks, paragraphs := splitMarkdown(page.text)
		check := func(line int, text string, span bool) {
			for _, words := range simpleCommands(text) {
				prog, args, ok := nsauthArgs(words)
				if !ok {
					continue
				}
				if span && outputNotCommands.MatchString(strings.Join(args, " ")) {
					continue
				}
				checked++
				if err := checkInvocation(full, client, prog, args); err != nil {
					t.Errorf("%s:%d: %s (in %q)", page.path, line, err, text)
				}
			}
		}
		for _, b := range blocks {
			switch b.lang {
			case "go", "json", "text":
				continue
			}
			for _, l := range shellLines(b) {
				check(b.line, l, false)
			}
		}
		for _, p := range paragraphs {
			for _, s := range codeSpans(p.text) {
				check(p.line, s, true)
			}
		}
	}
	t.Logf("checked %d nsauth commands", checked)
	if checked < 100 {
		t.Errorf("checked only %d nsauth commands in the documentation: is the parser broken?", checked)
	}
}

// markdownLink matches an inline link or image; its target has no spaces.
var markdownLink = regexp.MustCompile(`!?\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)

// headingAnchors returns the anchors GitHub gives a page's headings.
func headingAnchors(text string) map[string]bool {
	anchors := map[string]bool{}
	seen := map[string]int{}
	in := false
	for _, line := range strings.Split(text, "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "```") || strings.HasPrefix(trimmed, "~~~") {
			in = !in
			continue
		}
		if in || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(line, "#"))
		slug := githubSlug(title)
		if n := seen[slug]; n > 0 {
			anchors[fmt.Sprintf("%s-%d", slug, n)] = true
		} else {
			anchors[slug] = true
		}
		seen[slug]++
	}
	return anchors
}

// githubSlug is GitHub's anchor for a heading: lower case, punctuation
// dropped, spaces made hyphens.
func githubSlug(title string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(title) {
		switch {
		case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('-')
		}
	}
	return b.String()
}

// TestDocsLinksResolve: every relative link of every page leads to a file
// or directory of the repository, and every #anchor to a heading of the
// page it names.
func TestDocsLinksResolve(t *testing.T) {
	t.Parallel()
	links := 0
	for _, page := range docPages(t) {
		_, paragraphs := splitMarkdown(page.text)
		for _, p := range paragraphs {
			prose := inlineCode.ReplaceAllString(p.text, "code")
			for _, m := range markdownLink.FindAllStringSubmatch(prose, -1) {
				target := m[1]
				if regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*:`).MatchString(target) {
					continue // http:, https:, mailto:
				}
				links++
				file, anchor, _ := strings.Cut(target, "#")
				resolved := page.path
				if file != "" {
					resolved = filepath.ToSlash(filepath.Clean(filepath.Join(filepath.Dir(page.path), file)))
				}
				info, err := os.Stat(filepath.Join(moduleRoot, filepath.FromSlash(resolved)))
				if err != nil {
					if pendingPages[resolved] {
						t.Logf("%s:%d: links to %s, which is generated and not here yet", page.path, p.line, resolved)
						continue
					}
					t.Errorf("%s:%d: link %q: %s does not exist", page.path, p.line, target, resolved)
					continue
				}
				if anchor == "" {
					continue
				}
				if info.IsDir() || !strings.HasSuffix(resolved, ".md") {
					t.Errorf("%s:%d: link %q: an anchor into %s, which is not a Markdown page", page.path, p.line, target, resolved)
					continue
				}
				if !headingAnchors(readPage(t, resolved))[anchor] {
					t.Errorf("%s:%d: link %q: %s has no heading with the anchor #%s", page.path, p.line, target, resolved, anchor)
				}
			}
		}
	}
	t.Logf("checked %d relative links", links)
	if links < 50 {
		t.Errorf("found only %d relative links in the documentation: is the parser broken?", links)
	}
}

// TestDevelopNamesEveryPackage: DEVELOP.md's layout names every package
// directory of the module (nested modules apart), so a new package is
// described where contributors look.
func TestDevelopNamesEveryPackage(t *testing.T) {
	t.Parallel()
	develop := readPage(t, "DEVELOP.md")
	start := strings.Index(develop, "\n## Layout\n")
	if start < 0 {
		t.Fatal("DEVELOP.md has no ## Layout section")
	}
	layout := develop[start+1:]
	if end := strings.Index(layout[3:], "\n## "); end >= 0 {
		layout = layout[:end+3]
	}
	var dirs []string
	err := filepath.WalkDir(moduleRoot, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(moduleRoot, path)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			name := d.Name()
			if rel != "." && (strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || name == "testdata") {
				return filepath.SkipDir
			}
			if rel != "." {
				if _, err := os.Stat(filepath.Join(path, "go.mod")); err == nil {
					return filepath.SkipDir // a module of its own
				}
			}
			return nil
		}
		if strings.HasSuffix(d.Name(), ".go") {
			if dir := filepath.ToSlash(filepath.Dir(rel)); dir != "." && !slices.Contains(dirs, dir) {
				dirs = append(dirs, dir)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) < 30 {
		t.Fatalf("found only %d package directories: %v", len(dirs), dirs)
	}
	for _, dir := range dirs {
		if !strings.Contains(layout, "`"+dir+"`") {
			t.Errorf("DEVELOP.md's layout does not name the package `%s`", dir)
		}
	}
}

// TestDocsGoExamplesCompile: every Go block of the pages is a whole,
// gofmt-formatted file, and the files compile against this module.
func TestDocsGoExamplesCompile(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the documentation's Go programs")
	}
	root, err := filepath.Abs(moduleRoot)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	overlay := map[string]string{}
	var pkgs []string
	for _, page := range docPages(t) {
		blocks, _ := splitMarkdown(page.text)
		for _, b := range blocks {
			if b.lang != "go" {
				continue
			}
			src := []byte(b.text)
			formatted, err := format.Source(src)
			if err != nil {
				t.Errorf("%s:%d: the Go block is not a whole Go file (write it as a program, so that it compiles): %v", page.path, b.line, err)
				continue
			}
			if string(formatted) != b.text {
				t.Errorf("%s:%d: the Go block is not gofmt-formatted", page.path, b.line)
			}
			n := len(pkgs)
			file := filepath.Join(tmp, fmt.Sprintf("example%d.go", n))
			if err := os.WriteFile(file, src, 0o600); err != nil {
				t.Fatal(err)
			}
			// A directory that does not exist: the overlay adds it to the
			// module for this build only.
			dir := fmt.Sprintf("docs/goexamples/example%d", n)
			overlay[filepath.Join(root, filepath.FromSlash(dir), "main.go")] = file
			pkgs = append(pkgs, "./"+dir)
			t.Logf("%s:%d is %s", page.path, b.line, dir)
		}
	}
	if len(pkgs) < 3 {
		t.Fatalf("found only %d Go programs in the documentation", len(pkgs))
	}
	raw, err := json.Marshal(map[string]any{"Replace": overlay})
	if err != nil {
		t.Fatal(err)
	}
	overlayFile := filepath.Join(tmp, "overlay.json")
	if err := os.WriteFile(overlayFile, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to compile the examples: %v", err)
	}
	build := exec.Command(goTool, append([]string{"build", "-overlay", overlayFile, "-o", tmp + string(filepath.Separator)}, pkgs...)...)
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Errorf("the documentation's Go programs do not compile: %v\n%s", err, out)
	}
}
