"""How much camera information an EmbAE run's features hold: a linear probe per feature set.

    python evaluation/camera_probe.py runs/embae_synth [--split train] [--steps 1000]

EmbAE's premise is that z_nui takes the camera (and dataset) nuisance so that
z_id keeps identity. This measures it on the run's target dataset
(:func:`keras_reid.training.embae.camera_probe`): a linear softmax classifier
predicts the camera from the frozen trunk's features, the baseline z_id and
every fine-tuned variant's z_id, trained on the images of half of the
identities and scored on the other half. The figures are printed and written
to RUN/camera_probe_SPLIT.json.

A trunk whose features give the camera almost perfectly lets even a common
θ_nui condition on the camera, which bounds what a per-camera θ_nui can add.
"""

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keras_reid imports TensorFlow

from keras_reid.errors import ReIDError
from keras_reid.fileio import write_text
from keras_reid.training.embae import camera_probe


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="a finished EmbAE run folder")
    parser.add_argument("--split", default="train", choices=["train", "query", "gallery"])
    parser.add_argument("--steps", type=int, default=1000, help="training steps of each probe")
    args = parser.parse_args(argv)
    try:
        results = camera_probe(args.run, args.split, args.steps)
    except ReIDError as error:
        print(f"camera_probe: error: {error}", file=sys.stderr)
        return 2
    print(f"camera from features ({args.split} split, held-out identities): accuracy")
    for name, accuracy in results.items():
        print(f"{name:>20}: {accuracy:.3f}")
    out = os.path.join(args.run, f"camera_probe_{args.split}.json")
    write_text(out, json.dumps(results, indent=1) + "\n")
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
