// SQLite's math functions (sqrt, pow, ln, pi, ...), which Cloudflare's
// SQLite offers. go-sqlite3 compiles SQLite without
// SQLITE_ENABLE_MATH_FUNCTIONS unless built with its sqlite_math_functions
// tag, and a plain "go build" or "go test" takes no tags, so this file
// defines them and registers them on every connection SQLite opens (an
// auto extension): no per-connection Go callbacks, no per-connection Go
// memory.
//
// The rules are SQLite's: an argument is taken as a number after numeric
// affinity (integers, reals, text that reads as a number); anything else
// (NULL, BLOBs, other text) gives NULL; a result outside the function's
// domain (sqrt(-1), ln(0), acos(2)) is NULL; ceil, floor and trunc keep an
// integer an integer.

#include <math.h>
#include <stddef.h>

// Declared here rather than taken from go-sqlite3's header, which is not
// on this package's include path; the linker resolves them to the SQLite
// that go-sqlite3 compiles into the binary. Values from sqlite3.h.
typedef struct sqlite3 sqlite3;
typedef struct sqlite3_context sqlite3_context;
typedef struct sqlite3_value sqlite3_value;
typedef long long sqlite3_int64;

int sqlite3_create_function_v2(sqlite3 *, const char *, int, int, void *,
	void (*)(sqlite3_context *, int, sqlite3_value **),
	void (*)(sqlite3_context *, int, sqlite3_value **),
	void (*)(sqlite3_context *), void (*)(void *));
int sqlite3_auto_extension(void (*)(void));
int sqlite3_value_numeric_type(sqlite3_value *);
double sqlite3_value_double(sqlite3_value *);
sqlite3_int64 sqlite3_value_int64(sqlite3_value *);
void *sqlite3_user_data(sqlite3_context *);
void sqlite3_result_double(sqlite3_context *, double);
void sqlite3_result_int64(sqlite3_context *, sqlite3_int64);

enum {
	duraSQLiteOK = 0,
	duraSQLiteInteger = 1,
	duraSQLiteFloat = 2,
	duraSQLiteUTF8 = 1,
	duraSQLiteDeterministic = 0x000000800,
	duraSQLiteInnocuous = 0x000200000,
};

// A function of the table below: unary and rounding ones call f1, binary
// ones f2; SQLite hands each call its entry as user data.
struct function {
	const char *name;
	int args;
	void (*call)(sqlite3_context *, int, sqlite3_value **);
	double (*f1)(double);
	double (*f2)(double, double);
};

static const struct function *entry(sqlite3_context *ctx) {
	return (const struct function *)sqlite3_user_data(ctx);
}

// argument reads v as a number; 0 when it is none.
static int argument(sqlite3_value *v, double *x) {
	switch (sqlite3_value_numeric_type(v)) {
	case duraSQLiteInteger:
	case duraSQLiteFloat:
		*x = sqlite3_value_double(v);
		return 1;
	}
	return 0;
}

// result sets r, or leaves the result NULL when r is not a finite number.
static void result(sqlite3_context *ctx, double r) {
	if (isfinite(r)) {
		sqlite3_result_double(ctx, r);
	}
}

static void unary(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
	double x;
	(void)argc;
	if (argument(argv[0], &x)) {
		result(ctx, entry(ctx)->f1(x));
	}
}

static void binary(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
	double x, y;
	(void)argc;
	if (argument(argv[0], &x) && argument(argv[1], &y)) {
		result(ctx, entry(ctx)->f2(x, y));
	}
}

static void rounding(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
	(void)argc;
	switch (sqlite3_value_numeric_type(argv[0])) {
	case duraSQLiteInteger:
		sqlite3_result_int64(ctx, sqlite3_value_int64(argv[0]));
		return;
	case duraSQLiteFloat:
		result(ctx, entry(ctx)->f1(sqlite3_value_double(argv[0])));
	}
}

static void pi(sqlite3_context *ctx, int argc, sqlite3_value **argv) {
	(void)argc;
	(void)argv;
	sqlite3_result_double(ctx, M_PI);
}

static double degrees(double x) { return x * 180.0 / M_PI; }
static double radians(double x) { return x * M_PI / 180.0; }
static double log_base(double b, double x) { return log(x) / log(b); }

static const struct function functions[] = {
	{"acos", 1, unary, acos, NULL},
	{"acosh", 1, unary, acosh, NULL},
	{"asin", 1, unary, asin, NULL},
	{"asinh", 1, unary, asinh, NULL},
	{"atan", 1, unary, atan, NULL},
	{"atanh", 1, unary, atanh, NULL},
	{"cos", 1, unary, cos, NULL},
	{"cosh", 1, unary, cosh, NULL},
	{"sin", 1, unary, sin, NULL},
	{"sinh", 1, unary, sinh, NULL},
	{"tan", 1, unary, tan, NULL},
	{"tanh", 1, unary, tanh, NULL},
	{"exp", 1, unary, exp, NULL},
	{"ln", 1, unary, log, NULL},
	{"log", 1, unary, log10, NULL}, // log(X) is the base-10 logarithm
	{"log10", 1, unary, log10, NULL},
	{"log2", 1, unary, log2, NULL},
	{"sqrt", 1, unary, sqrt, NULL},
	{"degrees", 1, unary, degrees, NULL},
	{"radians", 1, unary, radians, NULL},
	{"ceil", 1, rounding, ceil, NULL},
	{"ceiling", 1, rounding, ceil, NULL},
	{"floor", 1, rounding, floor, NULL},
	{"trunc", 1, rounding, trunc, NULL},
	{"atan2", 2, binary, NULL, atan2},
	{"pow", 2, binary, NULL, pow},
	{"power", 2, binary, NULL, pow},
	{"mod", 2, binary, NULL, fmod},
	{"log", 2, binary, NULL, log_base}, // log(B, X): base B
	{"pi", 0, pi, NULL, NULL},
};

// registerMath is the auto extension's entry point: it runs for every
// connection SQLite opens.
static int registerMath(sqlite3 *db, const char **errmsg, const void *api) {
	(void)errmsg;
	(void)api;
	for (size_t i = 0; i < sizeof functions / sizeof functions[0]; i++) {
		int rc = sqlite3_create_function_v2(db, functions[i].name, functions[i].args,
			duraSQLiteUTF8 | duraSQLiteDeterministic | duraSQLiteInnocuous,
			(void *)&functions[i], functions[i].call, NULL, NULL, NULL);
		if (rc != duraSQLiteOK) {
			return rc;
		}
	}
	return duraSQLiteOK;
}

int duraRegisterMath(void) {
	return sqlite3_auto_extension((void (*)(void))registerMath);
}
