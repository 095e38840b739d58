# Models the pipeline trains itself for the embedded default. Their outputs are committed under
# weights/ (with a JSON sidecar: spec, command, sha256), so a demo needs no training;
# `snakemake --forcerun train_zoo_model` reproduces them.
#
# Each run: block hands discover.stages.training.run_trainer its trainer, as a function of the
# sidecar's `command`; run_trainer sets up logging and threads and builds that command, one form
# for all: `snakemake --cores <threads> --forcerun <rule> -- <target>` (it also reruns the jobs
# of the same rule the target depends on: the segmenter's command retrains its detector).
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
        from discover.stages.training import run_trainer
        from discover.training.zoo import train_zoo_model

        run_trainer(
            lambda command: train_zoo_model(
                output.model,
                output.meta,
                params.spec,
                params.lmbda,
                seed=params.seed,
                log_csv=output.losses,
                command=command,
            ),
            rule=rule,
            target=output.model,
            threads=threads,
            log=log,
            basedir=workflow.basedir,
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
        from discover.stages.training import run_trainer
        from discover.training.discover import train_vae

        run_trainer(
            lambda command: train_vae(
                output.vae,
                output.meta,
                params.spec,
                seed=params.seed,
                log_csv=output.losses,
                command=command,
            ),
            rule=rule,
            target=output.meta,
            threads=threads,
            log=log,
            basedir=workflow.basedir,
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
        from discover.stages.training import run_trainer
        from discover.training.discover import train_codec

        run_trainer(
            lambda command: train_codec(
                output.model,
                output.meta,
                params.spec,
                float(wildcards.rate),
                params.vae,
                model_id=wildcards.model,
                seed=params.seed,
                log_csv=output.losses,
                command=command,
            ),
            rule=rule,
            target=output.model,
            threads=threads,
            log=log,
            basedir=workflow.basedir,
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
        from discover.stages.training import run_trainer
        from discover.training.classifier import train_classifier

        run_trainer(
            lambda command: train_classifier(
                output.model,
                output.meta,
                params.spec,
                seed=params.seed,
                log_csv=output.losses,
                command=command,
            ),
            rule=rule,
            target=output.model,
            threads=threads,
            log=log,
            basedir=workflow.basedir,
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
        from discover.stages.training import run_trainer
        from discover.training.task_models import train_task_model

        run_trainer(
            lambda command: train_task_model(
                params.spec["kind"],
                output.model,
                output.meta,
                {k: v for k, v in params.spec.items() if k != "kind"},
                seed=params.seed,
                log_csv=output.losses,
                init_path=input.init[0] if input.init else None,
                command=command,
            ),
            rule=rule,
            target=output.model,
            threads=threads,
            log=log,
            basedir=workflow.basedir,
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
        from discover.stages.training import run_trainer
        from discover.training.composition import train_prior

        run_trainer(
            lambda command: train_prior(
                output.prior,
                params.spec,
                vae_dir=params.vae,
                seed=params.seed,
                meta_path=output.meta,
                log_csv=output.losses,
                command=command,
            ),
            rule=rule,
            target=output.meta,
            threads=threads,
            log=log,
            basedir=workflow.basedir,
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
        from discover.stages.training import run_trainer
        from discover.training.composition import train_composition

        run_trainer(
            lambda command: train_composition(
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
                command=command,
            ),
            rule=rule,
            target=output.model,
            threads=threads,
            log=log,
            basedir=workflow.basedir,
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
