# Models the pipeline trains itself for the embedded default. Their outputs are committed under
# weights/ (with a JSON sidecar: spec, command, sha256), so a demo needs no training;
# `snakemake --forcerun train_zoo_model` reproduces them.
#
# `run:` rather than `script:` on purpose: Snakemake reruns a script rule whose outputs are older
# than its script file, and a fresh git clone gives committed weights and scripts arbitrary
# relative mtimes, which would retrain on every clone.


rule train_zoo_model:
    output:
        model=f"{PLAN.weights_dir}/{{model}}/q{{rate}}.pth.tar",
        meta=f"{PLAN.weights_dir}/{{model}}/q{{rate}}.json",
        losses=f"{PLAN.weights_dir}/{{model}}/q{{rate}}.losses.csv",
    log:
        f"{OUT}/logs/train_zoo_model/{{model}}/q{{rate}}.log",
    benchmark:
        f"{OUT}/benchmarks/train_zoo_model/{{model}}/q{{rate}}.tsv"
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=res("mem_mb"),
        runtime=res("runtime", 4),
        gpu=0,
    params:
        spec=lambda wc: PLAN.zoo_training_spec(wc.model),
        lmbda=lambda wc: PLAN.zoo_lambda(wc.model, wc.rate),
        seed=config["seed"],
    message:
        "Training {wildcards.model} at rate {wildcards.rate}"
    run:
        import os
        from types import SimpleNamespace
        from discover.rule_context import rule_context
        from discover.training.zoo import train_zoo_model

        target = os.path.relpath(output.model, workflow.basedir)
        with rule_context(SimpleNamespace(threads=threads, log=log)):
            train_zoo_model(
                output.model,
                output.meta,
                params.spec,
                params.lmbda,
                seed=params.seed,
                log_csv=output.losses,
                command=f"snakemake --cores 1 --forcerun train_zoo_model -- {target}",
            )


rule train_discover_vae:
    output:
        vae=directory(f"{PLAN.weights_dir}/{{model}}/vae"),
        meta=f"{PLAN.weights_dir}/{{model}}/vae.json",
        losses=f"{PLAN.weights_dir}/{{model}}/vae.losses.csv",
    log:
        f"{OUT}/logs/train_discover_vae/{{model}}.log",
    benchmark:
        f"{OUT}/benchmarks/train_discover_vae/{{model}}.tsv"
    conda:
        "../envs/core.yaml"
    threads: 2
    resources:
        mem_mb=res("mem_mb", 2),
        runtime=res("runtime", 4),
        gpu=0,
    params:
        spec=lambda wc: PLAN.discover_training_spec(wc.model)["vae"],
        seed=config["seed"],
    message:
        "Training the tiny diffusion VAE of {wildcards.model}"
    run:
        import os
        from types import SimpleNamespace
        from discover.rule_context import rule_context
        from discover.training.discover import train_vae

        target = os.path.relpath(output.meta, workflow.basedir)
        with rule_context(SimpleNamespace(threads=threads, log=log)):
            train_vae(
                output.vae,
                output.meta,
                params.spec,
                seed=params.seed,
                log_csv=output.losses,
                command=f"snakemake --cores 2 --forcerun train_discover_vae -- {target}",
            )


rule train_discover:
    input:
        # ancient: committed weights in a fresh clone have arbitrary relative mtimes
        vae_meta=ancient(f"{PLAN.weights_dir}/{{model}}/vae.json"),
    output:
        model=f"{PLAN.weights_dir}/{{model}}/r{{rate}}.pth.tar",
        meta=f"{PLAN.weights_dir}/{{model}}/r{{rate}}.json",
        losses=f"{PLAN.weights_dir}/{{model}}/r{{rate}}.losses.csv",
    log:
        f"{OUT}/logs/train_discover/{{model}}/r{{rate}}.log",
    benchmark:
        f"{OUT}/benchmarks/train_discover/{{model}}/r{{rate}}.tsv"
    wildcard_constraints:
        model=PLAN.name_regex(list(config.get("discover_training", {}))),
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=res("mem_mb", 2),
        runtime=res("runtime", 4),
        gpu=0,
    params:
        spec=lambda wc: PLAN.discover_training_spec(wc.model),
        vae=lambda wc: str(PLAN.discover_vae_dir(wc.model)),
        seed=config["seed"],
    message:
        "Training {wildcards.model} at λ_R={wildcards.rate}"
    run:
        import os
        from types import SimpleNamespace
        from discover.rule_context import rule_context
        from discover.training.discover import train_codec

        target = os.path.relpath(output.model, workflow.basedir)
        with rule_context(SimpleNamespace(threads=threads, log=log)):
            train_codec(
                output.model,
                output.meta,
                params.spec,
                float(wildcards.rate),
                params.vae,
                model_id=wildcards.model,
                seed=params.seed,
                log_csv=output.losses,
                command=f"snakemake --cores 1 --forcerun train_discover -- {target}",
            )


rule train_classifier:
    output:
        model=f"{PLAN.weights_dir}/{{model}}/model.pth",
        meta=f"{PLAN.weights_dir}/{{model}}/model.json",
        losses=f"{PLAN.weights_dir}/{{model}}/model.losses.csv",
    log:
        f"{OUT}/logs/train_classifier/{{model}}.log",
    benchmark:
        f"{OUT}/benchmarks/train_classifier/{{model}}.tsv"
    wildcard_constraints:
        model=PLAN.name_regex(list(config.get("classifier_training", {}))),
    conda:
        "../envs/core.yaml"
    threads: 2
    resources:
        mem_mb=res("mem_mb", 2),
        runtime=res("runtime", 2),
        gpu=0,
    params:
        spec=lambda wc: PLAN.classifier_training_spec(wc.model),
        seed=config["seed"],
    message:
        "Training the classifier {wildcards.model} (demo FID features)"
    run:
        import os
        from types import SimpleNamespace
        from discover.rule_context import rule_context
        from discover.training.classifier import train_classifier

        target = os.path.relpath(output.model, workflow.basedir)
        with rule_context(SimpleNamespace(threads=threads, log=log)):
            train_classifier(
                output.model,
                output.meta,
                params.spec,
                seed=params.seed,
                log_csv=output.losses,
                command=f"snakemake --cores 2 --forcerun train_classifier -- {target}",
            )


rule train_task_model:
    input:
        init=lambda wc: [ancient(p) for p in [PLAN.task_init(wc.model)] if p],
    output:
        model=f"{PLAN.weights_dir}/{{model}}/model.pt",
        meta=f"{PLAN.weights_dir}/{{model}}/model.json",
        losses=f"{PLAN.weights_dir}/{{model}}/model.losses.csv",
    log:
        f"{OUT}/logs/train_task_model/{{model}}.log",
    benchmark:
        f"{OUT}/benchmarks/train_task_model/{{model}}.tsv"
    wildcard_constraints:
        model=PLAN.name_regex(list(config.get("task_training", {}))),
    conda:
        "../envs/core.yaml"
    threads: 2
    resources:
        mem_mb=res("mem_mb", 2),
        runtime=res("runtime", 2),
        gpu=0,
    params:
        spec=lambda wc: PLAN.task_training_spec(wc.model),
        seed=config["seed"],
    message:
        "Training the task model {wildcards.model}"
    run:
        import os
        from types import SimpleNamespace
        from discover.rule_context import rule_context
        from discover.training.task_models import train_task_model

        target = os.path.relpath(output.model, workflow.basedir)
        spec = dict(params.spec)
        kind = spec.pop("kind")
        with rule_context(SimpleNamespace(threads=threads, log=log)):
            train_task_model(
                kind,
                output.model,
                output.meta,
                spec,
                seed=params.seed,
                log_csv=output.losses,
                command=f"snakemake --cores 2 --force -- {target}",
                init_path=input.init[0] if input.init else None,
            )


rule train_prior:
    input:
        vae_meta=lambda wc: ancient(
            str(PLAN.discover_vae_dir(wc.model).with_suffix(".json"))
        ),
    output:
        prior=directory(f"{PLAN.weights_dir}/{{model}}/prior"),
        meta=f"{PLAN.weights_dir}/{{model}}/prior.json",
        losses=f"{PLAN.weights_dir}/{{model}}/prior.losses.csv",
    log:
        f"{OUT}/logs/train_prior/{{model}}.log",
    benchmark:
        f"{OUT}/benchmarks/train_prior/{{model}}.tsv"
    wildcard_constraints:
        model=PLAN.name_regex(PLAN.composition_models),
    conda:
        "../envs/core.yaml"
    threads: 2
    resources:
        mem_mb=res("mem_mb", 2),
        runtime=res("runtime", 4),
        gpu=0,
    params:
        spec=lambda wc: PLAN.composition_spec(wc.model)["prior"],
        vae=lambda wc: str(PLAN.discover_vae_dir(wc.model)),
        seed=config["seed"],
    message:
        "Training the mini diffusion prior of {wildcards.model}"
    run:
        import os
        from types import SimpleNamespace
        from discover.rule_context import rule_context
        from discover.training.composition import train_prior

        target = os.path.relpath(output.meta, workflow.basedir)
        with rule_context(SimpleNamespace(threads=threads, log=log)):
            train_prior(
                output.prior,
                params.spec,
                vae_dir=params.vae,
                seed=params.seed,
                meta_path=output.meta,
                log_csv=output.losses,
                command=f"snakemake --cores 2 --forcerun train_prior -- {target}",
            )


# Eq. 4, stages I and II, one rate point: the codec (from the base model's at the same λ_R,
# or a fresh one with codec_init: scratch)
# and its control module. Checkpoints (spec checkpoint_every) go under results/checkpoints/ and
# survive a killed job: rerunning the rule resumes from the newest one.
rule train_composition:
    input:
        prior_meta=ancient(f"{PLAN.weights_dir}/{{model}}/prior.json"),
        codec_init=lambda wc: [
            ancient(str(p)) for p in [PLAN.composition_init(wc.model, wc.rate)] if p
        ],
    output:
        model=f"{PLAN.weights_dir}/{{model}}/r{{rate}}.pth.tar",
        meta=f"{PLAN.weights_dir}/{{model}}/r{{rate}}.json",
        losses=f"{PLAN.weights_dir}/{{model}}/r{{rate}}.losses.csv",
        control=directory(f"{PLAN.weights_dir}/{{model}}/control/r{{rate}}"),
    log:
        f"{OUT}/logs/train_composition/{{model}}/r{{rate}}.log",
    benchmark:
        f"{OUT}/benchmarks/train_composition/{{model}}/r{{rate}}.tsv"
    wildcard_constraints:
        model=PLAN.name_regex(PLAN.composition_models),
    conda:
        "../envs/core.yaml"
    threads: 2
    resources:
        mem_mb=res("mem_mb", 4),
        runtime=res("runtime", 8),
        gpu=lambda wc: PLAN.composition_gpus(wc.model),
    params:
        spec=lambda wc: PLAN.composition_trainer_spec(wc.model),
        prior=lambda wc: str(PLAN.prior_dir(wc.model)),
        checkpoints=lambda wc: f"{OUT}/checkpoints/train_composition/{wc.model}/r{wc.rate}",
        seed=config["seed"],
        cache=PLAN.weights_cache,
    message:
        "Training {wildcards.model} with composition at λ_R={wildcards.rate}"
    run:
        import os
        from types import SimpleNamespace
        from discover.rule_context import rule_context
        from discover.training.composition import train_composition

        target = os.path.relpath(output.model, workflow.basedir)
        with rule_context(SimpleNamespace(threads=threads, log=log)):
            train_composition(
                output.model,
                output.control,
                output.meta,
                params.spec,
                float(wildcards.rate),
                prior=params.prior,
                model_id=wildcards.model,
                cache=params.cache,
                codec_init=input.codec_init[0] if input.codec_init else None,
                seed=params.seed,
                checkpoint_dir=params.checkpoints,
                log_csv=output.losses,
                command=f"snakemake --cores 2 --forcerun train_composition -- {target}",
            )


# The loss log of a composition model the codecs use, as a figure of the report.
rule training_loss_plot:
    input:
        prior=ancient(f"{PLAN.weights_dir}/{{model}}/prior.losses.csv"),
        rates=lambda wc: [
            ancient(str(p)) for p in PLAN.composition_loss_logs(wc.model).values()
        ],
    output:
        png=report(
            f"{OUT}/plots/training/{{model}}_losses.png",
            caption="../report/training_losses.rst",
            category="Training",
            labels={"model": "{model}", "plot": "losses"},
        ),
        pdf=f"{OUT}/plots/training/{{model}}_losses.pdf",
    log:
        f"{OUT}/logs/training_loss_plot/{{model}}.log",
    benchmark:
        f"{OUT}/benchmarks/training_loss_plot/{{model}}.tsv"
    wildcard_constraints:
        model=PLAN.name_regex(PLAN.composition_models),
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=res("mem_mb"),
        runtime=res("runtime"),
    params:
        rates=lambda wc: list(PLAN.composition_loss_logs(wc.model)),
    message:
        "Training losses of {wildcards.model}"
    script:
        "../workflow_scripts/training_loss_plot.py"


rule train_all:
    input:
        task_weight_targets(),
        zoo_weight_targets(),
        discover_weight_targets(),
        composition_weight_targets(),
        classifier_weight_targets(),
