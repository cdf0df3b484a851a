"""Static checks of the workflow: lint, dry-runs of the shipped configs, bad configs refused early."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, snakemake, snakemake_cmd


def test_lint_is_clean(tmp_path):
    proc = snakemake(tmp_path, "--lint", configfile=ROOT / ".test/config/config.yaml", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Congratulations" in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "cfg,models,sts_jobs,seeds",
    [("config/config.yaml", 4, 21, 2), ("config/full.yaml", 4, 21, 3), ("config/paper.yaml", 14, 42, 5)],
)
def test_shipped_configs_dry_run(tmp_path, cfg, models, sts_jobs, seeds):
    proc = snakemake(tmp_path, "--dry-run", configfile=ROOT / cfg)
    out = proc.stdout + proc.stderr
    assert re.search(rf"^embeddings\s+{models}$", out, re.M), out[-3000:]
    assert re.search(rf"^plots_tsne\s+{models}$", out, re.M)
    # the STS study: 7 variants x 3 (template, pooling) runs (plain at two, PromptEOL at one) per probed model,
    # then one table job
    assert re.search(rf"^sts_variant\s+{sts_jobs}$", out, re.M) and re.search(r"^sts_tables\s+1$", out, re.M)
    # the merging study: one training and one variants job per seed, scores for each seed and the base
    assert re.search(rf"^merging_train\s+{seeds}$", out, re.M) and re.search(
        rf"^merging_scores\s+{seeds + 1}$", out, re.M
    )


def test_the_full_config_plans_the_headline_runs_and_the_tour_says_it_is_one(tmp_path):
    """config/full.yaml is the full-scale run behind docs/results.md: all of STS-B, the paper's 20 000 GenericsKB
    sentences, three seeds, 120 LoRA steps; the default config is the tour, reduced, and labelled as such."""
    from repgeom.configure.config import load_yaml, validate_config

    full = validate_config(load_yaml(ROOT / "config/full.yaml"))
    assert full["data"]["stsb"]["limit"] == {} and full["data"]["genericskb"]["max_rows"] == 20000
    assert full["sts"]["seeds"] == [0, 1, 2] and full["merging"]["train"]["steps"] == 120
    assert set(full["sts"]["templates"]) == {"plain", "prompteol"} and full["label"] is None
    tour = validate_config(load_yaml(ROOT / "config/config.yaml"))
    assert "tour" in tour["label"] and "not the papers'" in tour["label"]
    assert tour["data"]["stsb"]["limit"] and tour["merging"]["train"]["steps"] < 120
    assert tour["sts"]["transfer"], "the tour shows probe transfer to a second pair set"
    out = snakemake(tmp_path, "--dry-run", configfile=ROOT / "config/full.yaml").stdout
    for rule, n in {"corpora": 3, "models": 4, "activations": 6, "sts_autoencoders": 6, "merging_scores": 4}.items():
        assert re.search(rf"^{rule}\s+{n}$", out, re.M), (rule, out[-3000:])


def test_the_catalog_test_config_runs_from_its_folder(tmp_path):
    """The Snakemake catalog's convention: `snakemake --directory .test` finds .test/config/config.yaml by itself
    (the tests run that config end to end: the tiny_run fixture)."""
    test_dir = tmp_path / ".test"
    shutil.copytree(ROOT / ".test", test_dir)
    proc = subprocess.run(
        [*snakemake_cmd(test_dir), "--dry-run"], capture_output=True, text=True, cwd=tmp_path, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"^embeddings\s+1$", proc.stdout, re.M) and "minilm" in proc.stdout


def test_two_runs_in_one_directory_are_refused_by_the_lock(tmp_path):
    import os
    import signal
    import subprocess
    import time

    cfg = ROOT / ".test/config/config.yaml"
    cmd = snakemake_cmd(tmp_path, cores=1) + ["--configfile", str(cfg)]
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        locks = tmp_path / ".snakemake" / "locks"
        deadline = time.time() + 60
        while not (locks.is_dir() and any(locks.iterdir())) and time.time() < deadline:
            time.sleep(0.2)
        assert locks.is_dir() and any(locks.iterdir()), "the first run never took its lock"
        second = snakemake(tmp_path, "--cores", "1", configfile=cfg, check=False)
        assert second.returncode != 0
        assert "cannot be locked" in second.stdout + second.stderr
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()


def test_bad_config_fails_before_any_job(tmp_path):
    c = yaml.safe_load((ROOT / ".test/config/config.yaml").read_text())
    c["sequences"]["tiny"]["n_sequences"] = 0
    c["models"]["../escape"] = c["models"]["minilm"]
    p = tmp_path / "bad.yaml"
    p.write_text(yaml.safe_dump(c))
    proc = snakemake(tmp_path, "--cores", "1", configfile=p, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "sequences.tiny.n_sequences" in out and "0" in out
    assert "../escape" in out
    assert not (tmp_path / "results").exists() and not (tmp_path / "resources").exists()


def test_job_threads_set_the_threads_of_every_model_job(tmp_path):
    """`resources.job_threads` (default 2) is what the model jobs claim; 1 lets two of them share two cores."""

    def threads(extra: dict) -> dict[str, set[int]]:
        c = yaml.safe_load((ROOT / ".test/config/config.yaml").read_text()) | extra
        p = tmp_path / "c.yaml"
        p.write_text(yaml.safe_dump(c))
        out = snakemake(tmp_path, "--dry-run", "--cores", "4", configfile=p).stdout
        got: dict[str, set[int]] = {}
        for block in re.split(r"\n(?=(?:local)?rule \w+:)", out):
            if m := re.match(r"(?:local)?rule (\w+):", block):
                t = re.search(r"^\s+threads: (\d+)$", block, re.M)
                got.setdefault(m.group(1), set()).add(int(t.group(1)) if t else 1)
        return got

    default, one, three = (
        threads({}),
        threads({"resources": {"job_threads": 1}}),
        threads({"resources": {"job_threads": 3}}),
    )
    assert default["models"] == default["embeddings"] == {2} and default["metrics"] == {1}
    assert set(one["models"]) | set(one["embeddings"]) == {1}
    assert three["models"] == three["embeddings"] == {3} and three["metrics"] == {1}


def test_every_rule_has_a_log_and_heavy_rules_a_benchmark():
    text = "\n".join(p.read_text() for p in (ROOT / "workflow/rules").glob("*.smk"))
    rules = re.split(r"^rule ", text, flags=re.M)[1:]
    assert rules
    for r in rules:
        name = r.split(":")[0]
        assert "    log:" in r, f"rule {name} has no log"
        assert "    conda:" in r, f"rule {name} has no conda env"
        if name in ("models", "embeddings", "metrics"):
            assert "    benchmark:" in r, f"rule {name} has no benchmark"


def test_conda_envs_list_what_their_rules_import():
    """Each rule's env names the third-party packages its script imports, directly or through the library
    modules it imports (module-level imports; lazy imports inside library functions are checked at run
    time by test_analysis_code_runs_without_torch)."""
    import ast

    pkg_of = {
        "sklearn": "scikit-learn",
        "yaml": "pyyaml",
        "matplotlib": "matplotlib",
        "h5py": "h5py",
        "numpy": "numpy",
        "pandas": "pandas",
        "scipy": "scipy",
        "jsonschema": "jsonschema",
        "torch": "torch",
        "transformers": "transformers",
        "sentence_transformers": "sentence-transformers",
        "tqdm": "tqdm",
        "huggingface_hub": "huggingface-hub",
        "gguf": "gguf",
        "tabulate": "tabulate",
    }
    lib = ROOT / "src/repgeom"

    def imports(path: Path, seen: set, top_only: bool) -> set:
        if path in seen:
            return set()
        seen.add(path)
        tree = ast.parse(path.read_text())
        nodes = tree.body if top_only else list(ast.walk(tree))
        out = set()
        for node in nodes:
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative import inside the library
                    if node.module and (lib / f"{node.module}.py").exists():
                        out |= imports(lib / f"{node.module}.py", seen, True)
                    continue
                names = [node.module or ""]
            for n in names:
                top = n.split(".")[0]
                if top == "repgeom":
                    sub = n.split(".")[1] if "." in n else None
                    if sub and (lib / f"{sub}.py").exists():
                        out |= imports(lib / f"{sub}.py", seen, True)
                elif top in pkg_of:
                    out.add(pkg_of[top])
        return out

    for smk in (ROOT / "workflow/rules").glob("*.smk"):
        for block in re.split(r"^rule ", smk.read_text(), flags=re.M)[1:]:
            env = re.search(r'conda:\s*\n\s*"([^"]+)"', block).group(1)
            script = re.search(r'script:\s*\n\s*"([^"]+)"', block).group(1)
            env_text = (smk.parent / env).resolve().read_text().lower()
            for pkg in sorted(imports((smk.parent / script).resolve(), set(), False)):
                assert re.search(rf"[\s-]{re.escape(pkg)}[=\s]", env_text) or (
                    pkg == "matplotlib" and "matplotlib-base" in env_text
                ), f"{env} lacks {pkg}, imported by {script}"


def test_configfile_replaces_the_default_instead_of_merging(tmp_path):
    (tmp_path / "config").mkdir()
    shutil.copy(ROOT / "config/config.yaml", tmp_path / "config/config.yaml")
    out = snakemake(tmp_path, "--dry-run").stdout
    assert re.search(r"^embeddings\s+4$", out, re.M)  # the default config applies without --configfile
    out = snakemake(tmp_path, "--dry-run", configfile=ROOT / ".test/config/config.yaml").stdout
    assert re.search(r"^embeddings\s+1$", out, re.M), out[-2000:]
    assert "all-minilm-l6-v2" not in out


def test_wrapper_scripts_do_not_shadow_importable_modules():
    """Snakemake puts workflow/scripts on sys.path: a wrapper named like a module a library probes for
    (e.g. transformers does `import datasets` when it finds one) would be imported in its place."""
    import importlib.metadata as md

    taken = set(sys.stdlib_module_names) | set(md.packages_distributions())
    taken |= {
        "datasets",
        "evaluate",
        "wandb",
        "tensorboard",
        "optimum",
        "peft",
        "accelerate",
        "deepspeed",
        "torchvision",
        "timm",
        "kernels",
        "bitsandbytes",
        "flash_attn",
        "sentencepiece",
        "tiktoken",
    }
    clash = sorted(p.stem for p in (ROOT / "workflow/scripts").glob("*.py") if p.stem in taken)
    assert not clash, f"wrapper scripts named like importable modules: {clash}"


def test_profiles_parse_and_keep_forbidden_flags_out_of_slurm_extra():
    for name in ("default", "slurm"):
        prof = yaml.safe_load((ROOT / f"workflow/profiles/{name}/config.yaml").read_text())
        assert isinstance(prof, dict) and prof
    slurm = yaml.safe_load((ROOT / "workflow/profiles/slurm/config.yaml").read_text())
    assert slurm["executor"] == "slurm" and slurm["retries"] >= 1
    extras = [
        str(v.get("slurm_extra", ""))
        for v in [slurm.get("default-resources") or {}, *(slurm.get("set-resources") or {}).values()]
    ]
    assert not any(re.search(r"--(gres|gpus|mem|time)\b", e) for e in extras)  # the plugin rejects them
    rules = set(
        re.findall(r"^rule (\w+):", "".join(p.read_text() for p in (ROOT / "workflow/rules").glob("*.smk")), re.M)
    )
    gpu_rules = {r for r, res in slurm["set-resources"].items() if res.get("gpu")}
    assert (
        gpu_rules
        == {
            "embeddings",
            "activations",
            "activation_part",
            "sts_autoencoders",
            "sts_variant",
            "merging_train",
            "merging_scores",
        }
        and gpu_rules <= rules
    )


def test_the_slurm_profile_gives_a_gather_job_no_gpu():
    """The activations job asks for a GPU where it extracts a one-part text set, for none where it only gathers
    row-parts (its input then names the parts): the profile's expression, evaluated by Snakemake's own parser."""
    import asyncio

    from snakemake.iocontainers import InputFiles
    from snakemake.resources import Resources

    slurm = yaml.safe_load((ROOT / "workflow/profiles/slurm/config.yaml").read_text())
    expr = slurm["set-resources"]["activations"]["gpu"]
    res = Resources.parse([f"gpu={expr}"], allow_expressions=True)["gpu"]

    def gpus(**named):
        inp = InputFiles(fromdict=named)
        return res.evaluate(
            wildcards={}, input=inp, attempt=1, threads=1, rulename="activations", async_run=asyncio.run
        )

    assert gpus(dataset="results/sequences/seq.json", model="resources/models/m").value == 1
    assert gpus(plan="results/activation_plans/seq.json", parts=["a", "b"]).value == 0


def test_each_study_can_be_asked_for_by_name(tmp_path):
    """`snakemake numbers|layers|sts|merging|similarity` plans that study's jobs and none of another's."""
    own = {
        "numbers": {"embeddings", "metrics", "plots_tsne", "metrics_summary", "plots_bars"},
        "layers": {
            "activation_plan",
            "activations",
            "layer_metrics",
            "layer_metrics_summary",
            "plots_layers",
            "plots_layer_tsne",
        },
        "sts": {
            "activation_plan",
            "activations",
            "sts_autoencoders",
            "sts_variant",
            "sts_tables",
            "plots_sts",
            "plots_sts_zero_shot",
            "sts_transfer",  # the tour applies the saved probes to a second pair set
        },
        "merging": {
            "merging_data",
            "merging_train",
            "merging_variants",
            "merging_scores",
            "merging_summary",
            "plots_merging",
        },
    }
    shared = {"models", "sequences", "corpora"}
    for study, rules in own.items():
        out = snakemake(tmp_path, "--dry-run", study, configfile=ROOT / "config/config.yaml").stdout
        planned = set(re.findall(r"^(\w+)\s+\d+$", out, re.M)) - {"total", study}
        assert rules <= planned and planned <= rules | shared, (study, planned)
    # the similarity study reads what the others cache (embeddings, shards, merged variants' embeddings), and makes
    # none of their tables or figures
    sim = {"similarity_pair", "similarity_summary", "plots_similarity_pair", "plots_similarity_models"}
    out = snakemake(tmp_path, "--dry-run", "similarity", configfile=ROOT / "config/config.yaml").stdout
    planned = set(re.findall(r"^(\w+)\s+\d+$", out, re.M)) - {"total", "similarity"}
    assert sim | {"similarity_merging", "embeddings", "activations", "merging_scores"} <= planned, planned
    assert not planned & {"metrics_summary", "layer_metrics", "sts_tables", "merging_summary", "plots_merging"}
