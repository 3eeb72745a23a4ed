package objectstore

import (
	"math"
	"testing"
)

func TestMathFunctions(t *testing.T) {
	s := openTest(t, Config{})
	cases := []struct {
		expr string
		want any
	}{
		{"sqrt(16)", 4.0},
		{"sqrt(-1)", nil},
		{"sqrt(NULL)", nil},
		{"sqrt('9')", 3.0},
		{"sqrt('nine')", nil},
		{"pi()", math.Pi},
		{"pow(2, 10)", 1024.0},
		{"power(2, 0.5)", math.Sqrt2},
		{"log(100)", 2.0},
		{"log(2, 8)", 3.0},
		{"log10(1000)", 3.0},
		{"log2(8)", 3.0},
		{"ln(1)", 0.0},
		{"ln(0)", nil},
		{"exp(0)", 1.0},
		{"mod(7, 3)", 1.0},
		{"mod(7.5, 2)", 1.5},
		{"ceil(1.2)", 2.0},
		{"ceiling(-1.2)", -1.0},
		{"ceil(5)", int64(5)},
		{"floor(-1.5)", -2.0},
		{"trunc(2.7)", 2.0},
		{"trunc(-2.7)", -2.0},
		{"degrees(pi())", 180.0},
		{"radians(180)", math.Pi},
		{"atan2(1, 1)", math.Pi / 4},
		{"cos(0)", 1.0},
		{"acos(2)", nil},
	}
	for _, c := range cases {
		t.Run(c.expr, func(t *testing.T) {
			if err := s.Begin(); err != nil {
				t.Fatal(err)
			}
			defer s.Rollback()
			got := mustExec(t, s, "SELECT "+c.expr).Raw()[0][0]
			if f, ok := got.(float64); ok {
				if w, ok := c.want.(float64); ok && math.Abs(f-w) < 1e-12 {
					return
				}
			}
			if got != c.want {
				t.Fatalf("%s = %v (%T), want %v (%T)", c.expr, got, got, c.want, c.want)
			}
		})
	}
	// Usable where SQLite needs deterministic functions.
	if err := s.Begin(); err != nil {
		t.Fatal(err)
	}
	mustExec(t, s, "CREATE TABLE p (x REAL, y REAL)")
	mustExec(t, s, "CREATE INDEX p_dist ON p (sqrt(x*x + y*y))")
	mustExec(t, s, "INSERT INTO p VALUES (3, 4)")
	if got := mustExec(t, s, "SELECT count(*) FROM p WHERE sqrt(x*x + y*y) = 5").Raw()[0][0]; got != int64(1) {
		t.Fatalf("indexed expression: %v", got)
	}
	s.Rollback()
}
