"""Plausible wrong answers to a1_backprop and the points each must lose (read by tests/test_assignments.py)."""

from tests.support.harness import WrongAnswer

FORWARD_EXP_SIGN = """# Forward pass: assign t0, t1, t01, t012, n_t, e, denom, f (in this order).
t0 = w0 * x0
t1 = w1 * x1
t01 = t0 + t1
t012 = t01 + w2
n_t = -t012
e = math.exp(t012)
denom = e + 1
f = 1 / denom
"""

BACKWARD_HEADER = (
    "# Backward pass: assign ddenom, de, dn_t, dt012, dw2, dt01, dt0, dt1, dw1, dx1, dw0, dx0 (in this order).\n"
)
BACKWARD_TEMPLATE = """ddenom = {ddenom}
de = 1 * ddenom
dn_t = e * de
dt012 = {dt012}
dw2 = 1 * dt012
dt01 = 1 * dt012
dt0 = 1 * dt01
dt1 = 1 * dt01
dw1 = {dw1}
dx1 = {dx1}
dw0 = {dw0}
dx0 = {dx0}
"""


def backward(**changes):
    """The Part A backward cell with some right-hand sides changed."""
    right = {"ddenom": "-1 / denom**2", "dt012": "-1 * dn_t", "dw1": "x1 * dt1", "dx1": "w1 * dt1",
             "dw0": "x0 * dt0", "dx0": "w0 * dt0"}  # fmt: skip
    return BACKWARD_HEADER + BACKWARD_TEMPLATE.format(**(right | changes))


def gate(name, args, body):
    """A Part B gate function with the given body (docstrings are left out: the grader does not read them)."""
    return f"def {name}({args}):\n" + "".join(f"    {line}\n" for line in body.strip().splitlines())


def numerical_gradient(body):
    return gate("numerical_gradient", "f, x, h=1e-5", body)


def relative_error(body):
    return gate("relative_error", "a, b", body)


def small_graph(da_line, sigmoid_input="z"):
    return gate(
        "small_graph_backward",
        "a, b, c, upstream",
        f"""
p = a * b
m = np.maximum(a, c)
z = p + m
out = 1 / (1 + np.exp(-z))
dz = sigmoid_backward({sigmoid_input}, upstream)
dp, dm = add_backward(p, m, dz)
da_through_product, db = multiply_backward(a, b, dp)
da_through_max, dc = max_backward(a, c, dm)
da = {da_line}
return da, db, dc
""",
    )


WRONG_ANSWERS = [
    # ---------------------------------------------------------------------------------------- Part A
    WrongAnswer(
        name="hand_multiply_not_swapped",
        mistake="Part A: the multiply gates send each input its own value times the gradient (dw0 = w0 * dt0)",
        replace={
            "backward_pass_code": backward(dw1="w1 * dt1", dx1="x1 * dt1", dw0="w0 * dt0", dx0="x0 * dt0"),
        },
        loses={"backward_pass_values": 3},
    ),
    WrongAnswer(
        name="hand_one_wrong_value",
        mistake="Part A: a single slip by hand, dx0 uses x0 instead of w0 (everything else right)",
        replace={"backward_pass_code": backward(dx0="x0 * dt0")},
        loses={"backward_pass_values": 3},
    ),
    WrongAnswer(
        name="hand_negate_sign_lost",
        mistake="Part A: the negate gate passes the gradient unchanged (dt012 = dn_t)",
        replace={"backward_pass_code": backward(dt012="dn_t")},
        loses={"backward_pass_values": 3},
    ),
    WrongAnswer(
        name="hand_reciprocal_not_squared",
        mistake="Part A: the reciprocal's local gradient taken as -1 / denom instead of -1 / denom**2",
        replace={"backward_pass_code": backward(ddenom="-1 / denom")},
        loses={"backward_pass_values": 3},
    ),
    WrongAnswer(
        name="hand_forward_exp_sign",
        mistake="Part A: e = exp(t012) instead of exp(n_t); the backward pass built on it is wrong too",
        replace={"forward_pass_code": FORWARD_EXP_SIGN},
        loses={"forward_pass_values": 2, "backward_pass_values": 3},
    ),
    # ---------------------------------------------------------------------------------------- Part B
    WrongAnswer(
        name="add_forgets_upstream",
        mistake="add gate returns only its local gradient, ones, without multiplying by upstream",
        replace={
            "add_backward_code": gate("add_backward", "x, y, upstream", "return np.ones_like(x), np.ones_like(y)")
        },
        loses={"add_backward_matches_tape": 2},
    ),
    WrongAnswer(
        name="add_splits_in_half",
        mistake="add gate 'distributes' by sharing the gradient, half to each input",
        replace={"add_backward_code": gate("add_backward", "x, y, upstream", "return upstream / 2, upstream / 2")},
        loses={"add_backward_matches_tape": 2},
    ),
    WrongAnswer(
        name="multiply_own_input",
        mistake="multiply gate sends each input its own value times upstream (dx = upstream * x)",
        replace={
            "multiply_backward_code": gate(
                "multiply_backward", "x, y, upstream", "return upstream * x, upstream * y"
            )
        },
        loses={"multiply_backward_matches_tape": 2},
    ),
    WrongAnswer(
        name="multiply_forgets_upstream",
        mistake="multiply gate returns only the local gradients (dx = y, dy = x)",
        replace={"multiply_backward_code": gate("multiply_backward", "x, y, upstream", "return y * 1.0, x * 1.0")},
        loses={"multiply_backward_matches_tape": 2},
    ),
    WrongAnswer(
        name="max_to_both",
        mistake="max gate sends the whole gradient to both inputs",
        replace={
            "max_backward_code": gate("max_backward", "x, y, upstream", "return upstream * 1.0, upstream * 1.0")
        },
        loses={"max_backward_routes_to_larger": 2, "max_backward_ties_go_to_first": 1},
    ),
    WrongAnswer(
        name="max_ties_to_second",
        mistake="max gate uses x > y, so ties go to y instead of x (tf.maximum's convention)",
        replace={
            "max_backward_code": gate(
                "max_backward",
                "x, y, upstream",
                "x_wins = x > y\nreturn np.where(x_wins, upstream, 0.0), np.where(x_wins, 0.0, upstream)",
            )
        },
        loses={"max_backward_ties_go_to_first": 1},
    ),
    WrongAnswer(
        name="max_ties_to_nobody",
        mistake="max gate uses x > y for dx and y > x for dy, so at a tie the gradient is lost",
        replace={
            "max_backward_code": gate(
                "max_backward",
                "x, y, upstream",
                "return np.where(x > y, upstream, 0.0), np.where(y > x, upstream, 0.0)",
            )
        },
        loses={"max_backward_ties_go_to_first": 1},
    ),
    WrongAnswer(
        name="sigmoid_without_one_minus",
        mistake="sigmoid backward uses s instead of s * (1 - s)",
        replace={
            "sigmoid_backward_code": gate(
                "sigmoid_backward", "x, upstream", "s = 1 / (1 + np.exp(-x))\nreturn s * upstream"
            )
        },
        loses={"sigmoid_backward_matches_tape": 2},
    ),
    WrongAnswer(
        name="sigmoid_formula_on_input",
        mistake="sigmoid backward applies s (1 - s) to the input itself: x * (1 - x) * upstream",
        replace={
            "sigmoid_backward_code": gate("sigmoid_backward", "x, upstream", "return x * (1 - x) * upstream")
        },
        loses={"sigmoid_backward_matches_tape": 2},
    ),
    WrongAnswer(
        name="sigmoid_forgets_upstream",
        mistake="sigmoid backward returns only the local gradient s * (1 - s)",
        replace={
            "sigmoid_backward_code": gate(
                "sigmoid_backward", "x, upstream", "s = 1 / (1 + np.exp(-x))\nreturn s * (1 - s)"
            )
        },
        loses={"sigmoid_backward_matches_tape": 2},
    ),
    # ---------------------------------------------------------------------------------------- Part C
    WrongAnswer(
        name="numgrad_divides_by_h",
        mistake="central difference divided by h instead of 2h",
        replace={
            "numerical_gradient_code": numerical_gradient("""
grad = np.zeros(x.shape)
for i in range(x.size):
    step = np.zeros(x.shape)
    step.flat[i] = h
    grad.flat[i] = (f(x + step) - f(x - step)) / h
return grad
""")
        },
        loses={"numerical_gradient_matches_tape": 3},
    ),
    WrongAnswer(
        name="numgrad_forward_difference",
        mistake="one-sided difference (f(x + h) - f(x)) / h instead of the central one",
        replace={
            "numerical_gradient_code": numerical_gradient("""
grad = np.zeros(x.shape)
f_x = f(x)
for i in range(x.size):
    step = np.zeros(x.shape)
    step.flat[i] = h
    grad.flat[i] = (f(x + step) - f_x) / h
return grad
""")
        },
        loses={"numerical_gradient_matches_tape": 3},
    ),
    WrongAnswer(
        name="numgrad_no_restore",
        mistake="perturbs x in place and never puts the entries back, so x drifts and the caller's x changes",
        replace={
            "numerical_gradient_code": numerical_gradient("""
grad = np.zeros(x.shape)
for index in np.ndindex(x.shape):
    original = x[index]
    x[index] = original + h
    f_plus = f(x)
    x[index] = original - h
    f_minus = f(x)
    grad[index] = (f_plus - f_minus) / (2 * h)
return grad
""")
        },
        loses={"numerical_gradient_matches_tape": 3, "numerical_gradient_leaves_input_unchanged": 1},
    ),
    WrongAnswer(
        name="numgrad_flat_result",
        mistake="collects the partial derivatives in a list and returns a flat vector instead of an array like x",
        replace={
            "numerical_gradient_code": numerical_gradient("""
partials = []
for i in range(x.size):
    step = np.zeros(x.shape)
    step.flat[i] = h
    partials.append((f(x + step) - f(x - step)) / (2 * h))
return np.array(partials)
""")
        },
        loses={"numerical_gradient_matches_tape": 3},
    ),
    WrongAnswer(
        name="relerr_no_denominator",
        mistake="relative error without the denominator: the largest absolute difference",
        replace={
            "relative_error_code": relative_error("return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))")
        },
        loses={"relative_error_formula": 2},
    ),
    WrongAnswer(
        name="relerr_no_floor",
        mistake="relative error without the floor 1e-8, so entries that are both 0 give 0 / 0 = nan",
        replace={
            "relative_error_code": relative_error("""
a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
with np.errstate(invalid="ignore"):
    return float(np.max(np.abs(a - b) / (np.abs(a) + np.abs(b))))
""")
        },
        loses={"relative_error_formula": 2},
    ),
    WrongAnswer(
        name="relerr_mean",
        mistake="relative error averaged over the entries instead of the worst entry",
        replace={
            "relative_error_code": relative_error("""
a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
return float(np.mean(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), 1e-8)))
""")
        },
        loses={"relative_error_formula": 2},
    ),
    WrongAnswer(
        name="relerr_max_over_max",
        mistake="relative error with max(|a|, |b|) in the denominator instead of |a| + |b|",
        replace={
            "relative_error_code": relative_error("""
a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
return float(np.max(np.abs(a - b) / np.maximum(np.maximum(np.abs(a), np.abs(b)), 1e-8)))
""")
        },
        loses={"relative_error_formula": 2},
    ),
    WrongAnswer(
        name="gradcheck_function_not_called",
        mistake="gradient_check passes the function analytic_grad itself instead of its value analytic_grad(x)",
        replace={
            "gradient_check_code": gate(
                "gradient_check",
                "f, analytic_grad, x, h=1e-5",
                "return relative_error(analytic_grad, numerical_gradient(f, x, h))",
            )
        },
        loses={"gradient_check_flags_wrong_gradients": 2},
    ),
    WrongAnswer(
        name="gradcheck_returns_verdict",
        mistake="gradient_check returns the verdict error < 1e-6 (a bool) instead of the error",
        replace={
            "gradient_check_code": gate(
                "gradient_check",
                "f, analytic_grad, x, h=1e-5",
                "return relative_error(analytic_grad(x), numerical_gradient(f, x, h)) < 1e-6",
            )
        },
        loses={"gradient_check_flags_wrong_gradients": 2},
    ),
    # ---------------------------------------------------------------------------------------- Part D
    WrongAnswer(
        name="fork_overwrites",
        mistake="Part D: the gradient of a, used twice, keeps only the max path instead of the sum of both paths",
        replace={"small_graph_backward_code": small_graph("da_through_max")},
        loses={"small_graph_backward_matches_tape": 3},
    ),
    WrongAnswer(
        name="fork_averages",
        mistake="Part D: the two gradients of a are averaged instead of added",
        replace={"small_graph_backward_code": small_graph("(da_through_product + da_through_max) / 2")},
        loses={"small_graph_backward_matches_tape": 3},
    ),
    WrongAnswer(
        name="graph_sigmoid_given_output",
        mistake="Part D: sigmoid_backward is given the gate's output instead of its input z",
        replace={
            "small_graph_backward_code": small_graph("da_through_product + da_through_max", sigmoid_input="out")
        },
        loses={"small_graph_backward_matches_tape": 3},
    ),
]


# Graded only in the full run: `python -m tests.support.harness a1_backprop`, or pytest with
# CNNBOOK_FULL_CORPUS=1. Each takes the same cells as another entry in a different way; CI grades the rest, to
# keep its time in bounds.
FULL_CORPUS_ONLY = {
    "hand_negate_sign_lost",
    "hand_reciprocal_not_squared",
    "add_splits_in_half",
    "multiply_forgets_upstream",
    "max_ties_to_nobody",
    "sigmoid_formula_on_input",
    "sigmoid_forgets_upstream",
    "numgrad_flat_result",
    "relerr_no_floor",
    "relerr_max_over_max",
    "gradcheck_returns_verdict",
    "fork_averages",
}
