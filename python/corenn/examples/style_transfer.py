"""python -m corenn.examples.style_transfer: neural style transfer (course 4,
week 4) on the two photographs that ship with scikit-learn: china.jpg (a
temple, the content) painted in the style of flower.jpg.

The feature network is a RANDOM convolutional network: three 3×3 convolutions
with ReLU (32, 64 and 128 channels, He-normal weights from the seed) and 2×2
average pooling between them, never trained. The course uses VGG-19 trained on
ImageNet, which this example cannot download. Random convolutional features
are known to carry texture: the Gram matrices of random filters' responses
already synthesise textures (Ulyanov et al. 2016; He, Wang, Hopcroft 2016,
"A powerful generative model using random weights for the deep image
representation"), so the style cost has something to match, and the content
cost keeps the photo's layout. Expect colours and brush-stroke textures from
the flower moved onto the temple, not VGG's painterly abstraction. A trained
network (one loaded from PyTorch with cn.interop.load_torch_state_dict, or a
corenn CNN) goes into cn.style.transfer the same way.

Images are centre-cropped squares scaled to SIZE × SIZE, RGB in [0, 1]; the
generated image starts at the content plus a little noise, is kept in [0, 1]
and optimised with Adam for J = α·J_content + β·J_style + tv·TV (content at
c3, style over c1, c2, c3 with equal weights). α = 10 as in the course, but
β = 1000, not 40: how large each cost is depends on the network (the course's
ratio is for VGG-19's activations on 400 × 300 images); with this network and
β = 40 the content term wins and the image stays a noisy copy of the temple.
A small total-variation weight (3e-6; the course has none) removes the
pixel-level speckle that matching the first layer's Gram matrix leaves.

    python -m corenn.examples.style_transfer     # the printout only
    python -m corenn.examples.style_transfer --out style_transfer  # also style_transfer.png, style_transfer_costs.png
    python -m corenn.examples.style_transfer --fast

docs/guide.md shows the printout of
`python -m corenn.examples.style_transfer --threads 1 --out docs/images/style_transfer`.
"""

import numpy as np

import corenn as cn
from corenn.examples import _cli

L = cn.layers

SIZE = 96
FAST = dict(size=32, steps=60)   # the tests' run, about a second


def photographs(size):
    """(content, style): china.jpg and flower.jpg as (3, size, size) float32 in
    [0, 1], centre-cropped to squares and scaled down (PIL's Lanczos filter)."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    images = dict(zip(["china.jpg", "flower.jpg"], load_sample_images().images))
    out = []
    for name in ("china.jpg", "flower.jpg"):
        img = images[name]
        h, w = img.shape[:2]
        side = min(h, w)
        top, left = (h - side) // 2, (w - side) // 2
        square = Image.fromarray(img[top:top + side, left:left + side]).resize((size, size), Image.LANCZOS)
        out.append((np.asarray(square, np.float32) / 255.0).transpose(2, 0, 1).copy())
    return out[0], out[1]


def random_features(size, seed=0):
    """The untrained feature network (see the module docstring); inputs are
    shifted to zero mean (x − 0.5) by a frozen 1×1 convolution's bias."""
    cn.seed(seed)
    model = cn.Sequential([
        L.Input((3, size, size)),
        L.Conv2D(3, 1, trainable=False, name="centre"),
        L.Conv2D(32, 3, padding="same", activation="relu", kernel_initializer="he_normal", name="c1"),
        L.AveragePooling2D(2, name="p1"),
        L.Conv2D(64, 3, padding="same", activation="relu", kernel_initializer="he_normal", name="c2"),
        L.AveragePooling2D(2, name="p2"),
        L.Conv2D(128, 3, padding="same", activation="relu", kernel_initializer="he_normal", name="c3"),
    ], name="random_features")
    model.build()
    model.get_layer("centre").set_weights([np.eye(3, dtype=np.float32).reshape(3, 3, 1, 1),
                                           np.full(3, -0.5, np.float32)])
    return model


def plot(prefix, content, style, image, costs):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(7.5, 2.8))
    for ax, img, title in zip(axes, (content, style, image), ("content (china.jpg)", "style (flower.jpg)",
                                                              "generated")):
        ax.imshow(np.clip(img.transpose(1, 2, 0), 0, 1))
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(f"{prefix}.png", dpi=80)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3))
    for key, label in (("total", "J"), ("content", "J_content"), ("style", "J_style")):
        ax.semilogy(costs[key], label=label)
    ax.set_xlabel("Adam step")
    ax.set_ylabel("cost")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(f"{prefix}_costs.png", dpi=80)
    plt.close(fig)


def run(size=SIZE, steps=400, learning_rate=0.02, alpha=10.0, beta=1000.0, tv_weight=3e-6, seed=0,
        out_prefix=None, out=print):
    content, style = photographs(size)
    model = random_features(size, seed)
    out(f"content china.jpg, style flower.jpg, {size}x{size} RGB; random-feature CNN "
        f"({model.count_params()} parameters, untrained)")
    image, costs = cn.style.transfer(model, content, style, content_layer="c3",
                                     style_layers=["c1", "c2", "c3"], alpha=alpha, beta=beta,
                                     tv_weight=tv_weight, steps=steps, learning_rate=learning_rate,
                                     noise=0.1, seed=seed, clip=(0, 1))
    for k in sorted({0, steps // 10, steps // 3, steps}):
        out(f"step {k:4d}: J = {costs['total'][k]:.4f}  (J_content {costs['content'][k]:.2e}, "
            f"J_style {costs['style'][k]:.2e}, TV {costs['tv'][k]:.0f})")
    out(f"J fell by a factor {costs['total'][0] / costs['total'][-1]:.1f} in {steps} Adam steps")
    if out_prefix:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            out(f"matplotlib is not installed (pip install 'corenn[plot]'): {out_prefix}.png and "
                f"{out_prefix}_costs.png not written")
        else:
            plot(out_prefix, content, style, image, costs)
            out(f"wrote {out_prefix}.png and {out_prefix}_costs.png")
    return {"image": image, "costs": costs, "content": content, "style": style}


def main(argv=None):
    parser = _cli.parser(__doc__, "a small image and few steps (tests)")
    parser.add_argument("--out", metavar="OUT",
                        help="write OUT.png (content, style, generated) and OUT_costs.png "
                             "(needs matplotlib; default: no images)")
    parser.add_argument("--seed", type=int, default=0)
    args = _cli.parse(parser, argv)
    return run(**(FAST if args.fast else {}), seed=args.seed, out_prefix=args.out)


if __name__ == "__main__":
    main()
