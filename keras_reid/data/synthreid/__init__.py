"""SynthReID: procedural pedestrian crops written in the Market-1501 layout.

SynthReID is the embedded default dataset: the demo, the quick configs and
many tests run on it, with nothing to download. Each preset is a *domain*:

==========  ======  =======  ===========  ==========================================
preset      role    cameras  default ids  look
==========  ======  =======  ===========  ==========================================
synth-a     source  6        300          city by day: street, indoor, brick, shops
synth-c     source  5        300          campus / mall: indoor, glass, brick, open
synth-b     target  6        300          evening, metro, park: dark, tinted, blurry
synth-d     target  6        300          dusk: park, station, streets; a milder gap
==========  ======  =======  ===========  ==========================================

Every identity has stable attributes (clothing colours and pattern, sleeves,
trousers / shorts / skirt, skin, hair colour and length, bag type, side and
colour, shoes, body height, width and leg ratio) drawn from the preset's
palette. Every camera has a systematic nuisance (:class:`CameraSpec`):
background family, illumination gain, per-channel colour cast, contrast,
vignetting, blur, sensor noise, JPEG quality, scale and position of the
detection box, a viewpoint mix (front / back / side: a backpack shows from
the back, a logo from the front) and an occlusion rate. The nuisance is a
deterministic function of the camera, which is what a model with a
per-camera nuisance code (EmbAE's ``z_nui``) can learn to factor out; the
target preset draws its cameras from other backgrounds, lighting, casts and
optics than the sources, and its people from a darker, wintrier palette, so
that transfer from synth-a/synth-c to synth-b is genuinely hard. synth-d is the
target with a realistic gap (its design is in the notes above ``PRESETS``): an
embedding trained on synth-a keeps about half of its in-domain Rank-1 there,
as Duke -> Market does in the EmbAE paper.

Splits follow Market-1501: half of the ids train, half test. A test id gives
one query image for each camera of a random non-empty subset of its cameras,
leaving at least one camera with gallery images only, so every query has a
gallery match on another camera. Distractors (pid 0, people seen nowhere
else, often badly framed) are added to the gallery. With the defaults a
preset holds about 4,200-4,900 images at 128x64 (H x W); ``ids`` scales it.

Every random draw comes from a numpy Generator seeded by (seed, preset,
identity, camera, image index), so the files are byte-identical for a seed
whatever the number of worker processes.

The package's modules, in the order an image is made: :mod:`.specs` (what a
camera, a palette and a preset specify; the random streams), :mod:`.presets`
(the four presets), :mod:`.people` (an identity's attributes),
:mod:`.drawing` (a pedestrian), :mod:`.backgrounds` (a camera's panorama),
:mod:`.camera` (one image through a camera's optics) and :mod:`.generation`
(the plan, the parallel rendering, the cache and the dataset registry).
"""

from keras_reid.data.synthreid.camera import render_image
from keras_reid.data.synthreid.drawing import draw_person
from keras_reid.data.synthreid.generation import (
    cache_root,
    generate,
    load_synthreid,
    plan,
    read_meta,
    spec_fingerprint,
    synth_a,
    synth_b,
    synth_c,
    synth_d,
)
from keras_reid.data.synthreid.people import Person, sample_person
from keras_reid.data.synthreid.presets import PRESETS, get_preset
from keras_reid.data.synthreid.specs import (
    BACKGROUNDS,
    META_FILE,
    SPLITS,
    VERSION,
    CameraSpec,
    PaletteSpec,
    PresetSpec,
)

__all__ = [
    "BACKGROUNDS",
    "META_FILE",
    "PRESETS",
    "SPLITS",
    "VERSION",
    "CameraSpec",
    "PaletteSpec",
    "Person",
    "PresetSpec",
    "cache_root",
    "draw_person",
    "generate",
    "get_preset",
    "load_synthreid",
    "plan",
    "read_meta",
    "render_image",
    "sample_person",
    "spec_fingerprint",
    "synth_a",
    "synth_b",
    "synth_c",
    "synth_d",
]
