from setuptools import find_packages, setup

setup(
    name="keras-reid",
    version="0.1.0",
    description="Person re-identification in Keras 3: metric embeddings, EmbAE, MSML, "
    "self-attention and DIEN, with exact re-ID evaluation.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["keras_reid", "keras_reid.*"]),
    include_package_data=True,
    install_requires=[
        "keras>=3.0",
        "numpy",
        "opencv-python-headless",
        "pandas",
        "matplotlib",
        "pyyaml",
        "h5py",
        "scipy",
        "scikit-learn",
        "tqdm",
        "tensorboard",
        "pyarrow",
        "faiss-cpu",
    ],
    extras_require={
        "cpu": ["tensorflow-cpu>=2.16"],
        "gpu": ["tensorflow[and-cuda]>=2.16"],
        "onnx": ["tf2onnx", "onnxruntime"],
        "test": [
            "pytest",
            "pytest-xdist",
            "ruff",
            "nbclient",
            "nbformat",
            "ipykernel",
            "tf2onnx",
            "onnxruntime",
        ],
    },
    entry_points={"console_scripts": ["keras-reid=keras_reid.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Image Recognition",
    ],
)
