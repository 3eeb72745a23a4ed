package objectstore

import (
	"math"
	"strconv"
	"strings"

	"github.com/mattn/go-sqlite3"
)

// SQLite's math functions (sqrt, pow, ln, pi, ...), which Cloudflare's
// SQLite offers, registered as Go functions on every connection: the
// driver compiles SQLite without SQLITE_ENABLE_MATH_FUNCTIONS unless built
// with its sqlite_math_functions tag, and a plain "go build" or "go test"
// takes no tags. They follow SQLite's rules: NULL in, NULL out; a result
// outside the function's domain (sqrt(-1), ln(0)) is NULL; ceil, floor
// and trunc keep an integer an integer.
var mathFuncs = map[string]any{
	"acos": unaryMath(math.Acos), "acosh": unaryMath(math.Acosh), "asin": unaryMath(math.Asin), "asinh": unaryMath(math.Asinh),
	"atan": unaryMath(math.Atan), "atanh": unaryMath(math.Atanh), "cos": unaryMath(math.Cos), "cosh": unaryMath(math.Cosh),
	"sin": unaryMath(math.Sin), "sinh": unaryMath(math.Sinh), "tan": unaryMath(math.Tan), "tanh": unaryMath(math.Tanh),
	"exp": unaryMath(math.Exp), "ln": unaryMath(math.Log), "log10": unaryMath(math.Log10), "log2": unaryMath(math.Log2),
	"sqrt": unaryMath(math.Sqrt), "degrees": unaryMath(func(x float64) float64 { return x * 180 / math.Pi }),
	"radians": unaryMath(func(x float64) float64 { return x * math.Pi / 180 }),
	"ceil":    roundingMath(math.Ceil), "ceiling": roundingMath(math.Ceil), "floor": roundingMath(math.Floor), "trunc": roundingMath(math.Trunc),
	"atan2": binaryMath(math.Atan2), "pow": binaryMath(math.Pow), "power": binaryMath(math.Pow), "mod": binaryMath(math.Mod),
	"pi": func() float64 { return math.Pi },
	// log(X) is the base-10 logarithm, log(B, X) the base-B one.
	"log": func(args ...any) any {
		switch len(args) {
		case 1:
			return unaryMath(math.Log10)(args[0])
		case 2:
			return binaryMath(func(b, x float64) float64 { return math.Log(x) / math.Log(b) })(args[0], args[1])
		}
		return nil
	},
}

// registerMath adds the math functions to a connection.
func registerMath(c *sqlite3.SQLiteConn) error {
	for name, fn := range mathFuncs {
		if err := c.RegisterFunc(name, fn, true); err != nil {
			return err
		}
	}
	return nil
}

// number reads an argument as SQLite's numeric affinity would: integers
// and reals as they are, text that reads as a number, anything else (NULL,
// BLOBs, other text) as no number.
func number(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case float64:
		return x, true
	case string:
		f, err := strconv.ParseFloat(strings.TrimSpace(x), 64)
		return f, err == nil
	}
	return 0, false
}

// real is a result: NULL when it is not a number.
func realOrNull(f float64) any {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil
	}
	return f
}

func unaryMath(f func(float64) float64) func(any) any {
	return func(v any) any {
		x, ok := number(v)
		if !ok {
			return nil
		}
		return realOrNull(f(x))
	}
}

func binaryMath(f func(float64, float64) float64) func(any, any) any {
	return func(a, b any) any {
		x, ok1 := number(a)
		y, ok2 := number(b)
		if !ok1 || !ok2 {
			return nil
		}
		return realOrNull(f(x, y))
	}
}

func roundingMath(f func(float64) float64) func(any) any {
	return func(v any) any {
		if i, ok := v.(int64); ok {
			return i
		}
		x, ok := number(v)
		if !ok {
			return nil
		}
		return realOrNull(f(x))
	}
}
