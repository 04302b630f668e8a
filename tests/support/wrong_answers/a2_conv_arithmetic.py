"""Plausible wrong answers to a2_conv_arithmetic and the points each must lose (read by tests/test_assignments.py).

The test cells are designed so that a mistake in one formula is caught where that formula is taught: the checks of
later functions use square inputs wherever the axes do not matter, and their cases where the windows do not fit
exactly (rounding down) count only where the student's own conv_output_size (or shape functions) gets them right,
so that a rounding mistake loses the cells about rounding, and a shape function that rounds on its own (instead of
reusing conv_output_size) loses its own cells. Mistakes that change
every shape or count (channels-first input, a forgotten bias) also fail the later functions that rely on them.
"""

import textwrap

from tests.support.harness import WrongAnswer

SIGNATURES = {
    "conv_output_size": 'conv_output_size(n, kernel_size, stride=1, padding="valid")',
    "conv_output_shape": 'conv_output_shape(input_shape, filters, kernel_size, strides=1, padding="valid")',
    "pool_output_shape": 'pool_output_shape(input_shape, pool_size, strides=None, padding="valid")',
    "conv2d_params": "conv2d_params(in_channels, filters, kernel_size, use_bias=True)",
    "dense_params": "dense_params(in_features, units, use_bias=True)",
    "depthwise_conv2d_params": (
        "depthwise_conv2d_params(in_channels, kernel_size, depth_multiplier=1, use_bias=True)"
    ),
    "separable_conv2d_params": (
        "separable_conv2d_params(in_channels, filters, kernel_size, depth_multiplier=1, use_bias=True)"
    ),
    "sequential_params": "sequential_params(input_shape, layers_spec)",
    "conv2d_multiplications": (
        'conv2d_multiplications(input_shape, filters, kernel_size, strides=1, padding="valid")'
    ),
    "activation_memory_bytes": "activation_memory_bytes(shape, batch_size=1, bytes_per_value=4)",
    "mb_and_mib": "mb_and_mib(n_bytes)",
}


def cell(function: str, body: str) -> dict[str, str]:
    """{solution grade_id: whole cell source}: the function's signature, a docstring and ``body`` as its body."""
    body = textwrap.indent(textwrap.dedent(body).strip("\n"), "    ")
    return {f"{function}_code": f'def {SIGNATURES[function]}:\n    """A wrong version of {function}."""\n{body}\n'}


POOLING_BRANCH = """
        elif name in ("MaxPooling2D", "AveragePooling2D"):
            strides, padding = options.get("strides"), options.get("padding", "valid")
            shape = pool_output_shape(shape, options["pool_size"], strides, padding)"""
FLATTEN_BRANCH = """
        elif name == "Flatten":
            shape = (math.prod(shape),)"""
SEQUENTIAL_BODY = """
    shape = tuple(input_shape)
    counts = []
    for name, options in layers_spec:
        params = 0
        if name == "Conv2D":
            filters, kernel_size = options["filters"], options["kernel_size"]
            params = conv2d_params(shape[-1], filters, kernel_size)
            strides, padding = options.get("strides", 1), options.get("padding", "valid")
            shape = conv_output_shape(shape, filters, kernel_size, strides, padding)"""
SEQUENTIAL_END = """
        elif name == "Dense":
            params = dense_params(shape[-1], options["units"])
            shape = shape[:-1] + (options["units"],)
        counts.append(params)
    return counts
"""


WRONG_ANSWERS = [
    # ------------------------------------------------------------------------------- Part A: conv_output_size
    WrongAnswer(
        name="explicit_padding_adds_p",
        mistake="adds p zeros in total instead of p on each side (n + p - k instead of n + 2p - k)",
        replace=cell(
            "conv_output_size",
            """
            if padding == "same":
                return math.ceil(n / stride)
            p = 0 if padding == "valid" else padding
            return (n + p - kernel_size) // stride + 1
            """,
        ),
        loses={"conv_output_explicit_padding": 2},
    ),
    WrongAnswer(
        name="same_padding_floor",
        mistake="rounds down instead of up for 'same' padding with a stride: floor(n / s)",
        replace=cell(
            "conv_output_size",
            """
            if padding == "same":
                return n // stride
            p = 0 if padding == "valid" else padding
            return (n + 2 * p - kernel_size) // stride + 1
            """,
        ),
        loses={"conv_output_same_padding": 2},
    ),
    WrongAnswer(
        name="valid_strided_ceil",
        mistake="rounds up instead of down when the stride does not divide n + 2p - k, counting a window that "
        "sticks out of the input",
        replace=cell(
            "conv_output_size",
            """
            if padding == "same":
                return math.ceil(n / stride)
            p = 0 if padding == "valid" else padding
            return math.ceil((n + 2 * p - kernel_size) / stride) + 1
            """,
        ),
        loses={"conv_output_valid_strided": 2, "conv_output_explicit_padding": 2},
    ),
    WrongAnswer(
        name="valid_forgets_plus_one",
        mistake="counts the steps of the window instead of its positions: (n + 2p - k) // s without the + 1",
        replace=cell(
            "conv_output_size",
            """
            if padding == "same":
                return math.ceil(n / stride)
            p = 0 if padding == "valid" else padding
            return (n + 2 * p - kernel_size) // stride
            """,
        ),
        loses={
            "conv_output_valid_stride1": 2,
            "conv_output_valid_strided": 2,
            "conv_output_explicit_padding": 2,
            "conv_output_shape_square": 2,
            "conv_output_shape_non_square": 2,
            "pool_output_default_strides": 2,
            "pool_output_strides_and_padding": 2,
            "sequential_params_matches_keras": 3,
            "conv2d_multiplications_valid_and_strided": 2,
        },
    ),
    # ------------------------------------------------------------------------------ Part A: conv_output_shape
    WrongAnswer(
        name="conv_shape_rounds_up",
        mistake="computes each axis with its own formula instead of conv_output_size, rounding up when the stride "
        "does not divide the input (28 x 28, 3 x 3, stride 2 gives 14 instead of 13)",
        replace=cell(
            "conv_output_shape",
            """
            height, width, _ = input_shape
            kernel_h, kernel_w = as_pair(kernel_size)
            stride_h, stride_w = as_pair(strides)
            if padding == "same":
                return math.ceil(height / stride_h), math.ceil(width / stride_w), filters
            p = 0 if padding == "valid" else padding
            out_h = math.ceil((height + 2 * p - kernel_h) / stride_h) + 1
            return out_h, math.ceil((width + 2 * p - kernel_w) / stride_w) + 1, filters
            """,
        ),
        loses={"conv_output_shape_square": 2, "conv_output_shape_non_square": 2},
    ),
    WrongAnswer(
        name="swapped_height_width",
        mistake="reads a (height, width) kernel size and stride as (width, height)",
        replace=cell(
            "conv_output_shape",
            """
            height, width, _ = input_shape
            kernel_w, kernel_h = as_pair(kernel_size)
            stride_w, stride_h = as_pair(strides)
            out_h = conv_output_size(height, kernel_h, stride_h, padding)
            return out_h, conv_output_size(width, kernel_w, stride_w, padding), filters
            """,
        ),
        loses={"conv_output_shape_non_square": 2},
    ),
    WrongAnswer(
        name="channels_first",
        mistake="reads input_shape as (channels, height, width), the PyTorch layout, instead of channels-last",
        replace=cell(
            "conv_output_shape",
            """
            _, height, width = input_shape
            kernel_h, kernel_w = as_pair(kernel_size)
            stride_h, stride_w = as_pair(strides)
            out_h = conv_output_size(height, kernel_h, stride_h, padding)
            return out_h, conv_output_size(width, kernel_w, stride_w, padding), filters
            """,
        ),
        loses={
            "conv_output_shape_square": 2,
            "conv_output_shape_non_square": 2,
            "sequential_params_matches_keras": 3,
            "conv2d_multiplications_same": 1,
            "conv2d_multiplications_valid_and_strided": 2,
        },
    ),
    WrongAnswer(
        name="depth_is_input_channels",
        mistake="keeps the input's depth instead of giving one output map per filter",
        replace=cell(
            "conv_output_shape",
            """
            height, width, channels = input_shape
            kernel_h, kernel_w = as_pair(kernel_size)
            stride_h, stride_w = as_pair(strides)
            out_h = conv_output_size(height, kernel_h, stride_h, padding)
            return out_h, conv_output_size(width, kernel_w, stride_w, padding), channels
            """,
        ),
        loses={
            "conv_output_shape_square": 2,
            "conv_output_shape_non_square": 2,
            "sequential_params_matches_keras": 3,
        },
    ),
    # ------------------------------------------------------------------------------------- Part B: pooling
    WrongAnswer(
        name="pool_default_stride_one",
        mistake="takes stride 1 when strides is None, instead of Keras' default, the pool size",
        replace=cell(
            "pool_output_shape",
            """
            height, width, channels = input_shape
            pool_h, pool_w = as_pair(pool_size)
            stride_h, stride_w = as_pair(1 if strides is None else strides)
            out_h = conv_output_size(height, pool_h, stride_h, padding)
            return out_h, conv_output_size(width, pool_w, stride_w, padding), channels
            """,
        ),
        loses={"pool_output_default_strides": 2, "sequential_params_matches_keras": 3},
    ),
    WrongAnswer(
        name="pool_ignores_padding",
        mistake="always pools with 'valid' padding, ignoring padding='same'",
        replace=cell(
            "pool_output_shape",
            """
            height, width, channels = input_shape
            pool_h, pool_w = as_pair(pool_size)
            stride_h, stride_w = (pool_h, pool_w) if strides is None else as_pair(strides)
            out_h = conv_output_size(height, pool_h, stride_h, "valid")
            return out_h, conv_output_size(width, pool_w, stride_w, "valid"), channels
            """,
        ),
        loses={"pool_output_default_strides": 2, "pool_output_strides_and_padding": 2},
    ),
    WrongAnswer(
        name="pool_shape_rounds_up",
        mistake="computes the pooled size with its own formula instead of conv_output_size, rounding up when the "
        "windows do not fit exactly (11 x 11 pooled 2 x 2 gives 6 instead of 5)",
        replace=cell(
            "pool_output_shape",
            """
            height, width, channels = input_shape
            pool_h, pool_w = as_pair(pool_size)
            stride_h, stride_w = (pool_h, pool_w) if strides is None else as_pair(strides)
            if padding == "same":
                return math.ceil(height / stride_h), math.ceil(width / stride_w), channels
            out_h = math.ceil((height - pool_h) / stride_h) + 1
            return out_h, math.ceil((width - pool_w) / stride_w) + 1, channels
            """,
        ),
        loses={"pool_output_default_strides": 2, "pool_output_strides_and_padding": 2},
    ),
    # ------------------------------------------------------------------------------ Part C: parameter counts
    WrongAnswer(
        name="conv2d_params_forgets_bias",
        mistake="counts the weights of a Conv2D layer but forgets its biases, one per filter",
        replace=cell(
            "conv2d_params",
            """
            kernel_h, kernel_w = as_pair(kernel_size)
            return kernel_h * kernel_w * in_channels * filters
            """,
        ),
        loses={"conv2d_params_bias": 1, "sequential_params_matches_keras": 3},
    ),
    WrongAnswer(
        name="conv2d_params_always_bias",
        mistake="adds the biases even when use_bias=False",
        replace=cell(
            "conv2d_params",
            """
            kernel_h, kernel_w = as_pair(kernel_size)
            return (kernel_h * kernel_w * in_channels + 1) * filters
            """,
        ),
        loses={"conv2d_params_weights": 1},
    ),
    WrongAnswer(
        name="conv2d_params_ignores_depth",
        mistake="gives each filter k x k weights, forgetting that a filter spans all input channels",
        replace=cell(
            "conv2d_params",
            """
            kernel_h, kernel_w = as_pair(kernel_size)
            return kernel_h * kernel_w * filters + (filters if use_bias else 0)
            """,
        ),
        loses={"conv2d_params_weights": 1, "conv2d_params_bias": 1, "sequential_params_matches_keras": 3},
    ),
    WrongAnswer(
        name="dense_params_forgets_bias",
        mistake="counts the weights of a Dense layer but forgets its biases",
        replace=cell("dense_params", "return in_features * units"),
        loses={"dense_params_matches_keras": 1, "sequential_params_matches_keras": 3},
    ),
    WrongAnswer(
        name="depthwise_bias_per_input_channel",
        mistake="gives a DepthwiseConv2D one bias per input channel instead of one per output map (C * m)",
        replace=cell(
            "depthwise_conv2d_params",
            """
            kernel_h, kernel_w = as_pair(kernel_size)
            return kernel_h * kernel_w * in_channels * depth_multiplier + (in_channels if use_bias else 0)
            """,
        ),
        loses={"depthwise_conv2d_params_matches_keras": 2},
    ),
    WrongAnswer(
        name="separable_forgets_depthwise",
        mistake="counts only the 1x1 pointwise convolution of a SeparableConv2D, forgetting the depthwise filters",
        replace=cell(
            "separable_conv2d_params",
            "return in_channels * depth_multiplier * filters + (filters if use_bias else 0)",
        ),
        loses={"separable_conv2d_params_weights": 2, "separable_conv2d_params_bias": 1},
    ),
    WrongAnswer(
        name="separable_bias_twice",
        mistake="gives the depthwise step of a SeparableConv2D biases as well, counting biases twice",
        replace=cell(
            "separable_conv2d_params",
            """
            kernel_h, kernel_w = as_pair(kernel_size)
            maps = in_channels * depth_multiplier
            depthwise = kernel_h * kernel_w * maps + (maps if use_bias else 0)
            pointwise = maps * filters + (filters if use_bias else 0)
            return depthwise + pointwise
            """,
        ),
        loses={"separable_conv2d_params_bias": 1},
    ),
    WrongAnswer(
        name="separable_pointwise_ignores_multiplier",
        mistake="lets the 1x1 step read in_channels maps instead of the in_channels * depth_multiplier "
        "depthwise maps",
        replace=cell(
            "separable_conv2d_params",
            """
            kernel_h, kernel_w = as_pair(kernel_size)
            depthwise = kernel_h * kernel_w * in_channels * depth_multiplier
            pointwise = in_channels * filters
            return depthwise + pointwise + (filters if use_bias else 0)
            """,
        ),
        loses={"separable_conv2d_params_weights": 2, "separable_conv2d_params_bias": 1},
    ),
    WrongAnswer(
        name="sequential_flatten_keeps_shape",
        mistake="treats Flatten as doing nothing, so the first Dense layer reads only the channels of the last "
        "feature map",
        replace=cell("sequential_params", SEQUENTIAL_BODY + POOLING_BRANCH + SEQUENTIAL_END),
        loses={"sequential_params_matches_keras": 3},
    ),
    WrongAnswer(
        name="sequential_pools_round_up",
        mistake="works out pooled sizes itself, rounding up, instead of calling pool_output_shape: the "
        "Fashion-MNIST CNN's last pool gives 4 x 4 instead of 3 x 3, 1,643,210 parameters instead of 1,413,834",
        replace=cell(
            "sequential_params",
            SEQUENTIAL_BODY
            + """
        elif name in ("MaxPooling2D", "AveragePooling2D"):
            pool = as_pair(options["pool_size"])
            step = pool if options.get("strides") is None else as_pair(options["strides"])
            size = [math.ceil((n - q) / t) + 1 for n, q, t in zip(shape[:2], pool, step)]
            shape = (size[0], size[1], shape[2])"""
            + FLATTEN_BRANCH
            + SEQUENTIAL_END,
        ),
        loses={"sequential_params_matches_keras": 3},
    ),
    WrongAnswer(
        name="sequential_ignores_pooling",
        mistake="lets pooling layers keep the shape, so the Dense layer after Flatten is counted far too large",
        replace=cell("sequential_params", SEQUENTIAL_BODY + FLATTEN_BRANCH + SEQUENTIAL_END),
        loses={"sequential_params_matches_keras": 3},
    ),
    # ------------------------------------------------------------------------- Part D: multiplications, memory
    WrongAnswer(
        name="multiplications_use_input_size",
        mistake="multiplies by the input's height and width instead of the output's",
        replace=cell(
            "conv2d_multiplications",
            """
            height, width, channels = input_shape
            kernel_h, kernel_w = as_pair(kernel_size)
            return height * width * filters * kernel_h * kernel_w * channels
            """,
        ),
        loses={"conv2d_multiplications_valid_and_strided": 2},
    ),
    WrongAnswer(
        name="multiplications_forget_input_channels",
        mistake="counts k x k multiplications per output value, forgetting that the window spans all input "
        "channels",
        replace=cell(
            "conv2d_multiplications",
            """
            out_h, out_w, _ = conv_output_shape(input_shape, filters, kernel_size, strides, padding)
            kernel_h, kernel_w = as_pair(kernel_size)
            return out_h * out_w * filters * kernel_h * kernel_w
            """,
        ),
        loses={"conv2d_multiplications_same": 1, "conv2d_multiplications_valid_and_strided": 2},
    ),
    WrongAnswer(
        name="multiplications_count_bias",
        mistake="counts the bias as one more multiplication per output value",
        replace=cell(
            "conv2d_multiplications",
            """
            out_h, out_w, _ = conv_output_shape(input_shape, filters, kernel_size, strides, padding)
            kernel_h, kernel_w = as_pair(kernel_size)
            return out_h * out_w * filters * (kernel_h * kernel_w * input_shape[-1] + 1)
            """,
        ),
        loses={"conv2d_multiplications_same": 1, "conv2d_multiplications_valid_and_strided": 2},
    ),
    WrongAnswer(
        name="memory_forgets_batch",
        mistake="computes the memory of one image and ignores batch_size",
        replace=cell("activation_memory_bytes", "return math.prod(shape) * bytes_per_value"),
        loses={"activation_memory_batch": 1},
    ),
    WrongAnswer(
        name="memory_counts_values",
        mistake="counts values instead of bytes, forgetting bytes_per_value",
        replace=cell("activation_memory_bytes", "return math.prod(shape) * batch_size"),
        loses={"activation_memory_one_image": 1, "activation_memory_batch": 1},
    ),
    WrongAnswer(
        name="megabyte_is_binary",
        mistake="divides by 2**20 for MB too, the slide's '11.4 MB' mistake",
        replace=cell("mb_and_mib", "return n_bytes / 2**20, n_bytes / 2**20"),
        loses={"memory_mb_vs_mib": 1},
    ),
    WrongAnswer(
        name="mebibyte_mixed_units",
        mistake="takes 1 MiB as 1024 * 1000 bytes, mixing the binary and decimal prefixes",
        replace=cell("mb_and_mib", "return n_bytes / 10**6, n_bytes / (1024 * 1000)"),
        loses={"memory_mb_vs_mib": 1},
    ),
]


# Graded only in the full run: `python -m tests.support.harness a2_conv_arithmetic`, or pytest with
# CNNBOOK_FULL_CORPUS=1. Each takes the same cells as another entry in a different way; CI grades the rest, to
# keep its time in bounds.
FULL_CORPUS_ONLY = {
    "mebibyte_mixed_units",
    "multiplications_count_bias",
    "separable_pointwise_ignores_multiplier",
    "conv2d_params_always_bias",
    "depth_is_input_channels",
    "sequential_ignores_pooling",
    "memory_counts_values",
    "valid_forgets_plus_one",
    "dense_params_forgets_bias",
    "pool_ignores_padding",
}
