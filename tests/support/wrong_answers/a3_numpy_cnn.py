"""Plausible wrong answers to a3_numpy_cnn and the points each must lose (read by tests/test_assignments.py).

Most mistakes are small edits of the reference solution, so they are written as edits (``_edit``): the reference
cell with one or two lines changed. An edit whose line is no longer in the reference fails loudly, so the corpus
cannot silently drift away from the notebook. Mistakes that change the whole approach are written out in full.

The check cells of Part A are built so that a mistake costs the points of what it breaks: the stride and padding
cells use kernels symmetric under a 180-degree rotation, one channel, one filter and a zero bias, so a flipped
kernel, a forgotten bias or a channel mistake does not spill into them. The last cell of each part that compares
everything with Keras or TensorFlow catches every mistake of that part. In Part C only the last cell has tied
maxima (one channel, windows that do not overlap), so a wrong rule for ties costs that cell alone, and the other
cells use distinct values.
"""

from tests.support.harness import WrongAnswer, read, reference_solutions, source_path

_REFERENCE = reference_solutions(read(source_path("a3_numpy_cnn")))

CONV_SINGLE = {"conv_forward_single_channel": 3}
CONV_CHANNELS = {"conv_forward_channels_filters_bias": 3}
CONV_STRIDE = {"conv_forward_stride": 3}
CONV_ZERO_PADDING = {"conv_forward_zero_padding": 2}
CONV_SAME = {"conv_forward_same_padding": 2}
CONV_KERAS = {"conv_forward_matches_keras": 3}
CONV_ALL = CONV_SINGLE | CONV_CHANNELS | CONV_STRIDE | CONV_ZERO_PADDING | CONV_SAME | CONV_KERAS
POOL_DEFAULT = {"max_pool_forward_default_stride": 2}
POOL_STRIDE = {"max_pool_forward_stride": 2}
POOL_CHANNELS = {"max_pool_forward_channels_batch": 2}
BACK_SEED = {"max_pool_backward_seed_grid": 2}
BACK_CHANNELS = {"max_pool_backward_channels_batch": 2}
BACK_OVERLAP = {"max_pool_backward_overlapping": 2}
BACK_TIES = {"max_pool_backward_ties": 1}
GRAD_BIAS = {"conv_backward_bias_gradient": 2}
GRAD_WEIGHTS = {"conv_backward_weight_gradient": 3}
GRAD_STRIDE_PADDING = {"conv_backward_stride_padding": 2}


def _edit(grade_id: str, *changes: tuple[str, str]) -> dict[str, str]:
    """The reference solution cell ``grade_id`` with each (old, new) change made; old must occur exactly once."""
    source = _REFERENCE[grade_id]
    for old, new in changes:
        count = source.count(old)
        assert count == 1, f"{grade_id}: {old!r} occurs {count} times in the reference solution, not once"
        source = source.replace(old, new)
    return {grade_id: source}


CONV_CHANNELS_FIRST = '''def conv2d_forward(x, w, b, stride=1, padding=0):
    """Reads x as (N, C, H, W), the PyTorch layout, and returns (N, F, H_out, W_out)."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    n, channels, height, width = x.shape
    k_h, k_w, _, filters = w.shape
    s_h, s_w = as_pair(stride)
    if padding == "same":
        pads = []
        for size, kernel_size, step in ((height, k_h, s_h), (width, k_w, s_w)):
            total = max((-(-size // step) - 1) * step + kernel_size - size, 0)
            pads.append((total // 2, total - total // 2))
    else:
        p = 0 if padding == "valid" else int(padding)
        pads = [(p, p), (p, p)]
    x = np.pad(x, ((0, 0), (0, 0), pads[0], pads[1]))
    out_h = (x.shape[2] - k_h) // s_h + 1
    out_w = (x.shape[3] - k_w) // s_w + 1
    y = np.zeros((n, filters, out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            window = x[:, :, i * s_h : i * s_h + k_h, j * s_w : j * s_w + k_w]
            y[:, :, i, j] = np.tensordot(window, w.transpose(2, 0, 1, 3), axes=3)
    return y + np.asarray(b, dtype=np.float64)[:, None, None]
'''

POOL_BACKWARD_ROW_COLUMN_SWAPPED = '''def max_pool_backward(dout, x, pool_size=2, stride=None):
    """Finds each maximum with argmax but turns its flat index into (column, row) instead of (row, column)."""
    x = np.asarray(x, dtype=np.float64)
    p_h, p_w = as_pair(pool_size)
    s_h, s_w = as_pair(pool_size if stride is None else stride)
    n, _, _, channels = x.shape
    images, chans = np.meshgrid(np.arange(n), np.arange(channels), indexing="ij")
    dx = np.zeros_like(x)
    for i in range(dout.shape[1]):
        for j in range(dout.shape[2]):
            window = x[:, i * s_h : i * s_h + p_h, j * s_w : j * s_w + p_w, :]
            flat = window.reshape(n, p_h * p_w, channels).argmax(axis=1)  # (N, C)
            row, col = flat % p_w, flat // p_w
            np.add.at(dx, (images, i * s_h + row, j * s_w + col, chans), dout[:, i, j, :])
    return dx
'''

WRONG_ANSWERS = [
    # ---------------------------------------------------------------------------- Part A: conv2d_forward
    WrongAnswer(
        name="flipped_kernel",
        mistake="computes true convolution (the kernel rotated by 180 degrees) instead of cross-correlation",
        replace=_edit(
            "conv2d_forward_code",
            ("np.tensordot(window, w, axes=3)", "np.tensordot(window, w[::-1, ::-1], axes=3)"),
        ),
        loses=CONV_SINGLE | CONV_KERAS,
    ),
    WrongAnswer(
        name="forgotten_bias",
        mistake="never adds the bias",
        replace=_edit("conv2d_forward_code", ("return y + np.asarray(b, dtype=np.float64)", "return y")),
        loses=CONV_CHANNELS | CONV_KERAS,
    ),
    WrongAnswer(
        name="channels_first",
        mistake="treats x as (N, C, H, W) and returns (N, F, H_out, W_out), the PyTorch layout",
        replace={"conv2d_forward_code": CONV_CHANNELS_FIRST},
        loses=CONV_ALL,
    ),
    WrongAnswer(
        name="padding_on_one_side",
        mistake="puts the p rows and columns of zeros only at the top and the left",
        replace=_edit("conv2d_forward_code", ("pads = [(p, p), (p, p)]", "pads = [(p, 0), (p, 0)]")),
        loses=CONV_ZERO_PADDING | CONV_KERAS,
    ),
    WrongAnswer(
        name="stride_ignored",
        mistake="computes the output size with the stride but moves the window one cell at a time",
        replace=_edit(
            "conv2d_forward_code",
            (
                "window = x[:, i * s_h : i * s_h + k_h, j * s_w : j * s_w + k_w, :]",
                "window = x[:, i : i + k_h, j : j + k_w, :]",
            ),
        ),
        loses=CONV_STRIDE | CONV_SAME | CONV_KERAS,
    ),
    WrongAnswer(
        name="stride_pair_swapped",
        mistake="reads a stride pair as (s_w, s_h)",
        replace=_edit("conv2d_forward_code", ("s_h, s_w = as_pair(stride)", "s_w, s_h = as_pair(stride)")),
        loses=CONV_STRIDE | CONV_KERAS,
    ),
    WrongAnswer(
        name="output_size_off_by_one",
        mistake="forgets the + 1 in the output size, so the last window position is never used",
        replace=_edit(
            "conv2d_forward_code",
            ("out_h = (x.shape[1] - k_h) // s_h + 1", "out_h = (x.shape[1] - k_h) // s_h"),
            ("out_w = (x.shape[2] - k_w) // s_w + 1", "out_w = (x.shape[2] - k_w) // s_w"),
        ),
        loses=CONV_ALL,
    ),
    WrongAnswer(
        name="strided_output_size",
        mistake="divides the number of stride-1 positions by the stride: (n + pads - k + 1) // s",
        replace=_edit(
            "conv2d_forward_code",
            ("out_h = (x.shape[1] - k_h) // s_h + 1", "out_h = (x.shape[1] - k_h + 1) // s_h"),
            ("out_w = (x.shape[2] - k_w) // s_w + 1", "out_w = (x.shape[2] - k_w + 1) // s_w"),
        ),
        loses=CONV_STRIDE | CONV_SAME | CONV_KERAS,
    ),
    WrongAnswer(
        name="output_size_without_padding",
        mistake="computes the output size from the unpadded input",
        replace=_edit(
            "conv2d_forward_code",
            ("out_h = (x.shape[1] - k_h) // s_h + 1", "out_h = (height - k_h) // s_h + 1"),
            ("out_w = (x.shape[2] - k_w) // s_w + 1", "out_w = (width - k_w) // s_w + 1"),
        ),
        loses=CONV_ZERO_PADDING | CONV_SAME | CONV_KERAS,
    ),
    WrongAnswer(
        name="same_padding_odd_zero_before",
        mistake='"same": puts the odd zero before the input (top, left) instead of after it',
        replace=_edit(
            "conv2d_forward_code",
            ("pads.append((total // 2, total - total // 2))", "pads.append((total - total // 2, total // 2))"),
        ),
        loses=CONV_SAME | CONV_KERAS,
    ),
    WrongAnswer(
        name="same_padding_half_kernel",
        mistake='"same": pads k // 2 on both sides whatever the stride (only right for odd kernels, stride 1)',
        replace=_edit(
            "conv2d_forward_code",
            ("pads.append((total // 2, total - total // 2))", "pads.append((kernel_size // 2, kernel_size // 2))"),
        ),
        loses=CONV_SAME | CONV_KERAS,
    ),
    WrongAnswer(
        name="same_padding_ignores_stride",
        mistake='"same": pads k - 1 zeros in total, the amount stride 1 needs, whatever the stride',
        replace=_edit(
            "conv2d_forward_code",
            ("total = max((positions - 1) * step + kernel_size - size, 0)", "total = kernel_size - 1"),
        ),
        loses=CONV_SAME | CONV_KERAS,
    ),
    # ---------------------------------------------------------------------------- Part B: max_pool_forward
    WrongAnswer(
        name="pool_default_stride_one",
        mistake="stride=None means a stride of 1 (overlapping windows) instead of the pool size",
        replace=_edit(
            "max_pool_forward_code",
            ("s_h, s_w = as_pair(pool_size if stride is None else stride)", "s_h, s_w = as_pair(stride or 1)"),
        ),
        loses=POOL_DEFAULT,
    ),
    WrongAnswer(
        name="pool_max_over_channels",
        mistake="takes one maximum over the window and all channels, instead of one per channel",
        replace=_edit(
            "max_pool_forward_code",
            ("y[:, i, j, :] = window.max(axis=(1, 2))", "y[:, i, j, :] = window.max(axis=(1, 2, 3))[:, None]"),
        ),
        loses=POOL_CHANNELS,
    ),
    WrongAnswer(
        name="pool_output_size_rounded_up",
        mistake="rounds the number of windows up, adding a last, incomplete window when the size does not fit",
        replace=_edit(
            "max_pool_forward_code",
            ("out_h = (height - p_h) // s_h + 1", "out_h = -(-(height - p_h) // s_h) + 1"),
            ("out_w = (width - p_w) // s_w + 1", "out_w = -(-(width - p_w) // s_w) + 1"),
        ),
        loses=POOL_DEFAULT | POOL_STRIDE,
    ),
    # ---------------------------------------------------------------------------- Part C: max_pool_backward
    WrongAnswer(
        name="pool_backward_spreads_evenly",
        mistake="spreads each upstream gradient evenly over its window (the gradient of average pooling)",
        replace=_edit(
            "max_pool_backward_code",
            (
                "dx[:, rows, cols, :] += is_max * dout[:, i : i + 1, j : j + 1, :]",
                "dx[:, rows, cols, :] += dout[:, i : i + 1, j : j + 1, :] / (p_h * p_w)",
            ),
        ),
        loses=BACK_SEED | BACK_CHANNELS | BACK_OVERLAP | BACK_TIES,
    ),
    WrongAnswer(
        name="pool_backward_overwrites",
        mistake="assigns each window's gradient instead of adding it, so overlapping windows overwrite each other",
        replace=_edit(
            "max_pool_backward_code",
            (
                "dx[:, rows, cols, :] += is_max * dout[:, i : i + 1, j : j + 1, :]",
                "dx[:, rows, cols, :] = is_max * dout[:, i : i + 1, j : j + 1, :]",
            ),
        ),
        loses=BACK_OVERLAP,
    ),
    WrongAnswer(
        name="pool_backward_without_upstream",
        mistake="routes 1 to each maximum instead of the upstream gradient (the local derivative only)",
        replace=_edit(
            "max_pool_backward_code",
            (
                "dx[:, rows, cols, :] += is_max * dout[:, i : i + 1, j : j + 1, :]",
                "dx[:, rows, cols, :] += is_max",
            ),
        ),
        loses=BACK_SEED | BACK_CHANNELS | BACK_OVERLAP | BACK_TIES,
    ),
    WrongAnswer(
        name="pool_backward_one_maximum_for_all_channels",
        mistake="finds one maximum per window across all channels and routes every channel's gradient there",
        replace=_edit(
            "max_pool_backward_code",
            (
                "first = window.reshape(n, p_h * p_w, channels).argmax(axis=1)",
                "strongest = window.max(axis=3).reshape(n, p_h * p_w).argmax(axis=1)\n"
                "            first = np.repeat(strongest[:, None], channels, axis=1)",
            ),
        ),
        loses=BACK_CHANNELS,
    ),
    WrongAnswer(
        name="pool_backward_every_tied_maximum",
        mistake="gives the gradient to every tied maximum (a mask of all the maxima), not only to the first",
        replace=_edit(
            "max_pool_backward_code",
            (
                "first = window.reshape(n, p_h * p_w, channels).argmax(axis=1)  # (N, C): the first maximum on a "
                "tie\n            ",
                "",
            ),
            (
                "is_max = (cells == first[:, None, :]).reshape(n, p_h, p_w, channels)  # one cell per window",
                "is_max = window == window.max(axis=(1, 2), keepdims=True)  # every maximum of the window",
            ),
        ),
        loses=BACK_TIES,
    ),
    WrongAnswer(
        name="pool_backward_last_tied_maximum",
        mistake="on a tie picks the last maximum in row-major order (a scan that keeps any value >= the best)",
        replace=_edit(
            "max_pool_backward_code",
            (
                "first = window.reshape(n, p_h * p_w, channels).argmax(axis=1)",
                "first = p_h * p_w - 1 - window.reshape(n, p_h * p_w, channels)[:, ::-1].argmax(axis=1)",
            ),
        ),
        loses=BACK_TIES,
    ),
    WrongAnswer(
        name="pool_backward_row_column_swapped",
        mistake="turns argmax's flat index into (column, row), sending the gradient to the transposed position",
        replace={"max_pool_backward_code": POOL_BACKWARD_ROW_COLUMN_SWAPPED},
        loses=BACK_SEED | BACK_CHANNELS | BACK_OVERLAP | BACK_TIES,
    ),
    # ---------------------------------------------------------------------------- Part D: conv2d_backward
    WrongAnswer(
        name="bias_gradient_averaged",
        mistake="averages the upstream gradient for db instead of adding it up",
        replace=_edit("conv2d_backward_code", ("db = dout.sum(axis=(0, 1, 2))", "db = dout.mean(axis=(0, 1, 2))")),
        loses=GRAD_BIAS,
    ),
    WrongAnswer(
        name="weight_gradient_flipped",
        mistake="returns dw rotated by 180 degrees, as if the forward pass had been a true convolution",
        replace=_edit("conv2d_backward_code", ("return dw, db", "return dw[::-1, ::-1], db")),
        loses=GRAD_WEIGHTS | GRAD_STRIDE_PADDING,
    ),
    WrongAnswer(
        name="weight_gradient_first_image_only",
        mistake="computes dw from the first image of the batch only",
        replace=_edit(
            "conv2d_backward_code",
            (
                "dw += np.tensordot(window, dout[:, i, j, :], axes=(0, 0))",
                "dw += np.tensordot(window[0], dout[0, i, j, :], axes=0)",
            ),
        ),
        loses=GRAD_WEIGHTS,
    ),
    WrongAnswer(
        name="weight_gradient_padding_ignored",
        mistake="reads the windows of dw from the unpadded input",
        replace=_edit("conv2d_backward_code", ("p = int(padding)", "p = 0")),
        loses=GRAD_STRIDE_PADDING,
    ),
    WrongAnswer(
        name="weight_gradient_stride_ignored",
        mistake="reads the windows of dw one cell apart whatever the stride",
        replace=_edit(
            "conv2d_backward_code",
            (
                "window = x[:, i * s_h : i * s_h + k_h, j * s_w : j * s_w + k_w, :]",
                "window = x[:, i : i + k_h, j : j + k_w, :]",
            ),
        ),
        loses=GRAD_STRIDE_PADDING,
    ),
]


# Graded only in the full run: `python -m tests.support.harness a3_numpy_cnn`, or pytest with
# CNNBOOK_FULL_CORPUS=1. Each takes the same cells as another entry in a different way; CI grades the rest, to
# keep its time in bounds.
FULL_CORPUS_ONLY = {
    "strided_output_size",
    "output_size_without_padding",
    "same_padding_half_kernel",
    "same_padding_ignores_stride",
    "stride_pair_swapped",
    "pool_output_size_rounded_up",
    "pool_backward_without_upstream",
    "pool_backward_row_column_swapped",
    "pool_backward_last_tied_maximum",
    "weight_gradient_stride_ignored",
}
