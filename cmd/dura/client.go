package main

// Helpers shared by the client subcommands (sql, call, alarm, kv, status,
// export, import, health, objects): the common flags, argument parsing,
// CLASS/NAME addressing, error wording and output formatting.

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/dura-dev/dura/rpc"
)

// clientOpts are the flags every client command takes.
type clientOpts struct {
	addr    string
	token   string
	timeout time.Duration
}

// addClientFlags defines --addr, --token and --timeout (30 s) on fs.
func addClientFlags(fs *flag.FlagSet) *clientOpts {
	return addClientFlagsTimeout(fs, 30*time.Second)
}

// addClientFlagsTimeout is addClientFlags with another default timeout,
// for commands that move whole databases.
func addClientFlagsTimeout(fs *flag.FlagSet, timeout time.Duration) *clientOpts {
	o := &clientOpts{}
	fs.StringVar(&o.addr, "addr", "http://127.0.0.1:8080", "base URL of the node to talk to")
	fs.StringVar(&o.token, "token", "", "admin bearer token (the node's --admin-token; default $DURA_ADMIN_TOKEN, so commands run beside a node work)")
	fs.DurationVar(&o.timeout, "timeout", timeout, "time limit of each request (0: none)")
	return o
}

// client returns the API client the flags describe.
func (o *clientOpts) client() *rpc.Client {
	hc := &http.Client{Timeout: o.timeout}
	return rpc.NewClient(o.addr, hc).WithToken(o.token)
}

// apiError prints an API error answer as "CODE (status): message".
type apiError struct{ e *rpc.APIError }

func (a *apiError) Error() string {
	return fmt.Sprintf("%s (%d): %s", a.e.Code, a.e.Status, a.e.Message)
}

func (a *apiError) Unwrap() error { return a.e }

// clientErr words an error of a request for the terminal: API answers as
// "CODE (status): message", transport failures with the address tried.
func (o *clientOpts) clientErr(err error) error {
	if err == nil {
		return nil
	}
	var ae *rpc.APIError
	if errors.As(err, &ae) {
		return &apiError{ae}
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		if ue.Timeout() {
			return fmt.Errorf("no answer from %s within %s (--timeout)", o.addr, o.timeout)
		}
		return fmt.Errorf("cannot reach %s: %w", o.addr, ue.Err)
	}
	return err
}

// parseArgs applies DURA_<NAME> environment values, then parses args
// allowing flags anywhere among the positional arguments (so
// "dura sql db/x 'SELECT 1' --json" works). An argument is taken as a flag
// only if it looks like one: "-" alone, negative numbers and text with
// spaces (SQL starting with "--", say) are positional, and "--" ends the
// flags.
func parseArgs(fs *flag.FlagSet, env *cliEnv, args []string) ([]string, error) {
	if err := parseFlags(fs, env, nil); err != nil {
		return nil, err
	}
	var pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if !looksLikeFlag(a) {
			pos = append(pos, a)
			continue
		}
		chunk := []string{a}
		name, _, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if f := fs.Lookup(name); f != nil && !hasValue && !isBoolFlag(f) && i+1 < len(args) {
			chunk = append(chunk, args[i+1])
			i++
		}
		if err := fs.Parse(chunk); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
	}
	return pos, nil
}

func looksLikeFlag(a string) bool {
	if len(a) < 2 || a[0] != '-' {
		return false
	}
	if _, err := strconv.ParseFloat(a, 64); err == nil {
		return false
	}
	name, _, _ := strings.Cut(a, "=")
	return !strings.ContainsFunc(name, unicode.IsSpace)
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ", ") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// oneObject reads the one CLASS/NAME argument of a command.
func oneObject(pos []string) (class, name string, err error) {
	if len(pos) != 1 {
		return "", "", usageErr("want CLASS/NAME, got %d arguments", len(pos))
	}
	return splitObject(pos[0])
}

// splitObject reads CLASS/NAME for the commands that take no handler
// path (sql, alarm, kv, export, import); see parseTarget.
func splitObject(arg string) (class, name string, err error) {
	class, name, _, err = parseTarget(arg, false)
	return class, name, err
}

// parseCallTarget reads CLASS/NAME[/PATH][?QUERY] for call; see
// parseTarget.
func parseCallTarget(arg string) (class, name, path string, err error) {
	return parseTarget(arg, true)
}

// parseTarget is the one reading of an object argument, so every command
// reaches the same object from the same text: CLASS and NAME are
// URL-path-escaped ("%2F" is a '/' in a name, "%25" a '%'). With a path
// (call) the name ends at the next '/' and the rest, query included, is
// passed on as written; without one, a further unescaped '/' belongs to
// the name, so "db/a/b" and "db/a%2Fb" are the same object there.
func parseTarget(arg string, withPath bool) (class, name, path string, err error) {
	form := "CLASS/NAME"
	target, query, hasQuery := arg, "", false
	if withPath {
		form = "CLASS/NAME[/PATH][?QUERY]"
		target, query, hasQuery = strings.Cut(arg, "?")
	}
	class, rest, ok := strings.Cut(target, "/")
	if !ok || class == "" {
		return "", "", "", usageErr("%q is not %s", arg, form)
	}
	rawName, p := rest, ""
	if withPath {
		rawName, p, _ = strings.Cut(rest, "/")
	}
	if rawName == "" {
		return "", "", "", usageErr("%q is not %s: no NAME", arg, form)
	}
	if class, err = url.PathUnescape(class); err != nil {
		return "", "", "", usageErr("class in %q: %v", arg, err)
	}
	if name, err = url.PathUnescape(rawName); err != nil {
		return "", "", "", usageErr("name in %q: %v (write a '%%' in a name as %%25)", arg, err)
	}
	if !withPath {
		return class, name, "", nil
	}
	path = "/" + p
	if hasQuery {
		path += "?" + query
	}
	return class, name, path, nil
}

// readInput reads "-" (stdin) or a file, up to limit bytes.
func readInput(env *cliEnv, arg string, limit int64) ([]byte, error) {
	var r io.Reader
	if arg == "-" {
		r = env.stdin
	} else {
		f, err := os.Open(arg)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("input is over %d bytes", limit)
	}
	return b, nil
}

// formatAlarm shows unix ms as RFC3339 (UTC, milliseconds) plus the
// number, or "no alarm".
func formatAlarm(ms *int64) string {
	if ms == nil {
		return "no alarm"
	}
	return fmt.Sprintf("%s (unix ms %d)", shortTime(*ms), *ms)
}

func shortTime(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// humanBytes formats a size as B, KiB, MiB, GiB.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	f, units := float64(n)/unit, []string{"KiB", "MiB", "GiB", "TiB"}
	i := 0
	for f >= unit && i < len(units)-1 {
		f /= unit
		i++
	}
	return fmt.Sprintf("%.1f %s", f, units[i])
}

// newTabWriter aligns columns separated by '\t'; Flush it when done.
func newTabWriter(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
}
