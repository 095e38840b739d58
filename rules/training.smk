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


# The exact list of training images of a training_data entry (sources -> manifest), written
# once; every train rule reads the manifest, not the sources. Its params are the entry itself,
# so changing a source reruns the manifest and (with the same params on the train rules) what
# trains on it. The manifest goes with the weights (weights/training-data/), committed with them.
rule training_manifest:
    output:
        manifest=f"{PLAN.weights_dir}/training-data/{{pool}}.tsv",
    log:
        f"{OUT}/logs/training_manifest/{{pool}}.log",
    benchmark:
        f"{OUT}/benchmarks/training_manifest/{{pool}}.tsv"
    wildcard_constraints:
        pool=PLAN.name_regex(list(PLAN.training_pools)),
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=res("mem_mb"),
        runtime=res("runtime", 2),
        gpu=0,
    params:
        spec=lambda wc: PLAN.training_data_spec(wc.pool),
        seed=config["seed"],
    message:
        "Listing the training images of {wildcards.pool}"
    run:
        from discover.stages.training import run_trainer
        from discover.training.data import build_manifest

        run_trainer(
            lambda command: build_manifest(
                output.manifest,
                params.spec,
                params.seed,
                where=f"training_data.{wildcards.pool}",
            ),
            rule=rule,
            target=output.manifest,
            threads=threads,
            log=log,
            basedir=workflow.basedir,
        )


rule train_zoo_model:
    input:
        manifest=lambda wc: ancient(
            str(PLAN.training_manifest("zoo_training", wc.model))
        ),
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
        data=lambda wc: PLAN.training_data_spec(
            PLAN.training_pool("zoo_training", wc.model)
        ),
        seed=config["seed"],
    message:
        "Training {wildcards.model} at rate {wildcards.rate}"
    run:
        from discover.stages.training import run_trainer
        from discover.training.data import TrainingData
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
                data=TrainingData.from_manifest(input.manifest, params.data),
            ),
            rule=rule,
            target=output.model,
            threads=threads,
            log=log,
            basedir=workflow.basedir,
        )


rule train_discover_vae:
    input:
        manifest=lambda wc: ancient(
            str(PLAN.training_manifest("discover_training", wc.model, "vae"))
        ),
    output:
        vae=directory(f"{PLAN.weights_dir}/{{model}}/vae"),
        meta=f"{PLAN.weights_dir}/{{model}}/vae.json",
        losses=f"{PLAN.weights_dir}/{{model}}/vae.losses.csv",
    log:
        f"{OUT}/logs/train_discover_vae/{{model}}.log",
    benchmark:
        f"{OUT}/benchmarks/train_discover_vae/{{model}}.tsv"
    wildcard_constraints:
        model=PLAN.name_regex(
            [
                m
                for m in config.get("discover_training", {})
                if PLAN.pretrained_vae(m) is None
            ]
        ),
    conda:
        "../envs/core.yaml"
    threads: 2
    resources:
        mem_mb=res("mem_mb", 2),
        runtime=res("runtime", 4),
        gpu=0,
    params:
        spec=lambda wc: PLAN.discover_training_spec(wc.model)["vae"],
        data=lambda wc: PLAN.training_data_spec(
            PLAN.training_pool("discover_training", wc.model, "vae")
        ),
        seed=config["seed"],
    message:
        "Training the tiny diffusion VAE of {wildcards.model}"
    run:
        from discover.stages.training import run_trainer
        from discover.training.data import TrainingData
        from discover.training.discover import train_vae

        run_trainer(
            lambda command: train_vae(
                output.vae,
                output.meta,
                params.spec,
                seed=params.seed,
                log_csv=output.losses,
                command=command,
                data=TrainingData.from_manifest(input.manifest, params.data),
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
        vae=lambda wc: [ancient(p) for p in PLAN.discover_vae_inputs(wc.model)],
        elic=lambda wc: [
            ancient(p)
            for p in PLAN.elic_inputs("discover_training", wc.model, wc.rate)
        ],
        manifest=lambda wc: ancient(
            str(PLAN.training_manifest("discover_training", wc.model))
        ),
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
        data=lambda wc: PLAN.training_data_spec(
            PLAN.training_pool("discover_training", wc.model)
        ),
        cache=PLAN.weights_cache,
        seed=config["seed"],
    message:
        "Training {wildcards.model} at λ_R={wildcards.rate}"
    run:
        from discover.stages.training import run_trainer
        from discover.training.data import TrainingData
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
                data=TrainingData.from_manifest(input.manifest, params.data),
                cache=params.cache,
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
        vae=lambda wc: [ancient(p) for p in PLAN.discover_vae_inputs(wc.model)],
        manifest=lambda wc: ancient(
            str(PLAN.training_manifest("composition_training", wc.model, "prior"))
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
        model=PLAN.name_regex(PLAN.trained_priors),
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
        data=lambda wc: PLAN.training_data_spec(
            PLAN.training_pool("composition_training", wc.model, "prior")
        ),
        seed=config["seed"],
    message:
        "Training the mini diffusion prior of {wildcards.model}"
    run:
        from discover.stages.training import run_trainer
        from discover.training.data import TrainingData
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
                data=TrainingData.from_manifest(input.manifest, params.data),
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
        prior=lambda wc: [ancient(p) for p in PLAN.prior_inputs(wc.model)],
        codec_init=lambda wc: [
            ancient(str(p)) for p in [PLAN.composition_init(wc.model, wc.rate)] if p
        ],
        elic=lambda wc: [
            ancient(p)
            for p in PLAN.elic_inputs("composition_training", wc.model, wc.rate)
        ],
        manifest=lambda wc: ancient(
            str(PLAN.training_manifest("composition_training", wc.model))
        ),
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
    threads: lambda wc: PLAN.composition_threads(wc.model)
    # Several processes (DDP): `tasks` ranks on `nodes` nodes with `gpu` GPUs in all; on SLURM
    # the profile makes them --ntasks / --nodes / --gpus and `mpi` has the job start its ranks
    # with srun itself (discover.training.launch); on one machine torch.distributed.run does.
    resources:
        mem_mb=res("mem_mb", 4),
        runtime=res("runtime", 8),
        gpu=lambda wc: PLAN.composition_gpus(wc.model),
        nodes=lambda wc: PLAN.composition_nodes(wc.model),
        tasks=lambda wc: PLAN.composition_processes(wc.model),
        tasks_per_gpu=lambda wc: 1 if PLAN.composition_gpus(wc.model) else 0,
        mpi=lambda wc: "srun" if PLAN.composition_processes(wc.model) > 1 else "",
        cpus_per_task=lambda wc: PLAN.composition_cpus_per_task(wc.model),
    params:
        spec=lambda wc: PLAN.composition_trainer_spec(wc.model),
        prior=lambda wc: str(PLAN.prior_dir(wc.model)),
        checkpoints=lambda wc: f"{OUT}/checkpoints/train_composition/{wc.model}/r{wc.rate}",
        data=lambda wc: PLAN.training_data_spec(
            PLAN.training_pool("composition_training", wc.model)
        ),
        processes=lambda wc: PLAN.composition_processes(wc.model),
        nodes=lambda wc: PLAN.composition_nodes(wc.model),
        seed=config["seed"],
        cache=PLAN.weights_cache,
    message:
        "Training {wildcards.model} with composition at λ_R={wildcards.rate}"
    run:
        from discover.stages.training import run_trainer
        from discover.training.launch import run_composition

        run_trainer(
            lambda command: run_composition(
                {
                    "codec_path": output.model,
                    "control_dir": output.control,
                    "meta_path": output.meta,
                    "spec": params.spec,
                    "lambda_r": float(wildcards.rate),
                    "prior": params.prior,
                    "model_id": wildcards.model,
                    "cache": params.cache,
                    "codec_init": input.codec_init[0] if input.codec_init else None,
                    "seed": params.seed,
                    "checkpoint_dir": params.checkpoints,
                    "log_csv": output.losses,
                },
                command=command,
                manifest=input.manifest,
                data_spec=params.data,
                processes=params.processes,
                nodes=params.nodes,
                threads=threads,
                job_file=f"{params.checkpoints}.job.json",
                log_file=log[0],
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
        prior=lambda wc: [
            ancient(f"{PLAN.weights_dir}/{wc.model}/prior.losses.csv")
            for _ in [wc.model]
            if wc.model in PLAN.trained_priors
        ],
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


rule discover_model_index:
    output:
        f"{PLAN.weights_dir}/{{model}}/model_index.json",
    log:
        f"{OUT}/logs/discover_model_index/{{model}}.log",
    benchmark:
        f"{OUT}/benchmarks/discover_model_index/{{model}}.tsv"
    wildcard_constraints:
        model=PLAN.name_regex(PLAN.discover_models),
    conda:
        "../envs/core.yaml"
    threads: 1
    resources:
        mem_mb=res("mem_mb"),
        runtime=res("runtime"),
    params:
        index=lambda wc: PLAN.discover_model_index(wc.model),
    message:
        "Writing what belongs to {wildcards.model} (rates, VAE, prior, control) for the CLI"
    run:
        from discover.stages.training import write_model_index

        write_model_index(output[0], params.index)


rule train_all:
    input:
        task_weight_targets(),
        zoo_weight_targets(),
        discover_weight_targets(),
        composition_weight_targets(),
        classifier_weight_targets(),
        model_index_targets(),
