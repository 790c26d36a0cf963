"""EmbAE: metric embedding autoencoders for unsupervised cross-dataset transfer.

Potapov et al., "Metric Embedding Autoencoders for Unsupervised Cross-Dataset
Transfer Learning". The recipe, as :func:`train_embae` runs it:

1. Stage 1: a metric embedding (trunk + f_emb) trained with the
   batch-hard soft-margin triplet loss on the labelled sources, by
   :func:`keras_reid.training.embedding.train_embedding` into ``out/embedding``
   (skipped when ``embedding.model_path`` names a trained one).
2. Feature cache: the frozen trunk's pooled features of every source train,
   target train, query and gallery image and of its flip
   (:mod:`keras_reid.training.feature_cache`).
3. Autoencoder pre-training on the sources, labels unused: θ_emb
   frozen, θ_nui and θ_dec trained to reconstruct the trunk features, with a
   common θ_nui, one per dataset or one per camera.
4. Unsupervised fine-tuning on the target's train split (camera
   ids used, person ids not), one variant per row of the paper's tables:

   ============  =========  ==============================================
   variant       θ_nui      fine-tuning
   ============  =========  ==============================================
   all           common     θ_emb, θ_nui, θ_dec together
   fix_nui       common     θ_nui frozen; θ_emb, θ_dec trained
   new_nui       common     θ_nui re-initialised and trained alone, then
                            θ_emb, θ_dec trained with it frozen
   dataset_nui   per        as new_nui, with a new θ_nui for the target
                 dataset    dataset
   cam_nui       per        as new_nui, with a new θ_nui for each target
                 camera     camera
   bn_adapt      none       the control: the stage-1 head with only its
                            BatchNorm statistics re-estimated on the
                            target (what fine-tuning θ_emb gives without
                            the reconstruction loss)
   ============  =========  ==============================================

5. Scoring as in the paper's tables: Rank-1, mAP and their "-nd" forms (same-camera gallery
   items ignored) on the target's query/gallery, z_id averaged over the image
   and its flip (results.*) and over Hermans et al.'s ten views, five crops and
   their mirrors (results_ten_views.*, the paper's test-time augmentation), and
   L2-normalised; the baseline row is the stage-1 embedding.

Datasets without camera ids (camid -1): fix_nui, new_nui and dataset_nui
still run; cam_nui cannot pick a θ_nui for such images. Asked for alone it
stops with a ReIDError saying why; among other variants it is skipped with a
logged warning, so that a long run still delivers the rows it can.

Every autoencoder stage is a ``model.fit`` of :func:`build_embae_model` on
cached features, what it may change chosen by ``trainable`` flags. Each epoch
visits every cached image once, as the image or its flip at random.

Config sections (each maps onto one function's or dataclass's arguments):

=============  ===============================================================
data           :func:`load_embae_data` (``sources``: list of specs, ``target``)
embedding      the stage-1 config of :func:`train_embedding` without ``data``
               (model, loss, batches, schedule, train), plus ``model_path``
autoencoder    :func:`build_embae_model` (nui_dim, decoder_hidden); the other
               sizes come from the stage-1 model
cache          :class:`CacheOptions` (dir, batch_size)
pretrain       :class:`StageOptions` of stage 3
finetune       :class:`StageOptions` of the θ_emb/θ_dec part of stage 4
finetune_nui   :class:`StageOptions` of the new-θ_nui part of stage 4
variants       a list of ``VARIANTS`` (default: all of them)
train          :class:`RunOptions` (seed, verbose, export_inference, ten_views)
=============  ===============================================================

Outputs in ``out``: config.yaml; embedding/ (stage 1); cache/*.npz;
pretrain_{common,dataset,camera}/ and one folder per variant, each holding
model.keras (the autoencoder), groups.json (the θ_nui group of each dataset or
camera), log.csv and, with ``export_inference``, inference.keras (images +
group -> z_id, z_nui); results.csv, results.md and results.png."""

from keras_reid.training.embae.config import (
    NUI_MODES,
    SECTIONS,
    VARIANT_NUI,
    VARIANTS,
    CacheOptions,
    EmbAEData,
    RunOptions,
    StageOptions,
    load_embae_data,
    runnable_variants,
)
from keras_reid.training.embae.recipe import train_embae
from keras_reid.training.embae.scoring import camera_probe, embed, score
from keras_reid.training.embae.stages import (
    EpochBar,
    feature_batches,
    fit_stage,
    group_indices,
    group_keys,
)

__all__ = [
    "NUI_MODES",
    "SECTIONS",
    "VARIANTS",
    "VARIANT_NUI",
    "CacheOptions",
    "EmbAEData",
    "EpochBar",
    "RunOptions",
    "StageOptions",
    "camera_probe",
    "embed",
    "feature_batches",
    "fit_stage",
    "group_indices",
    "group_keys",
    "load_embae_data",
    "runnable_variants",
    "score",
    "train_embae",
]
