"""Fixed benchmark corpora built with the project's generator, cached under bench/out/."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import msgspec
from isal import igzip

from exporter.generator import Generator
from exporter.sources.file import trail_files

OUT = Path(__file__).resolve().parent / "out"


@dataclass(frozen=True)
class Spec:
    name: str
    files: int
    records_per_file: int
    accounts: int = 4
    queues_per_account: int = 8  # per account and region; the generator adds a DLQ for every fifth
    seed: int = 20261101
    sqs_share: float = 0.5
    extras: bool = True  # a digest and an Insight file per account/region (skipped objects)
    replicas: int = 1  # hard-linked copies of the whole tree (the --big corpus: size without generation time)


MAIN = Spec("main", files=600, records_per_file=1000)
QUICK = Spec("quick", files=16, records_per_file=500)
ONE = Spec("one", files=1, records_per_file=1000, extras=False)
# ~1,000 queues: 4 accounts × 2 regions × (105 + 21 DLQs) = 1,008 (account, region, queue) series
BIG_BASE = Spec("big", files=240, records_per_file=1000, queues_per_account=105, replicas=36)
SOAK_POOL = Spec("soak", files=48, records_per_file=1000, queues_per_account=105)


@dataclass
class Corpus:
    spec: Spec
    root: Path
    files: int  # objects on disk (trail files + digest/Insight)
    records: int
    sqs: int
    compressed_bytes: int
    uncompressed_bytes: int

    @property
    def paths(self) -> list[Path]:
        return list(trail_files(self.root))


def build(spec: Spec, log: bool = True) -> Corpus:
    """The corpus for `spec`, generated once and reused while the spec (and the generator) is unchanged."""
    key = f"{spec.name}-" + hashlib.sha1(json.dumps(asdict(spec), sort_keys=True).encode()).hexdigest()[:10]
    root = OUT / "corpus" / key
    meta_path = root / "meta.json"
    if meta_path.exists():
        meta = json.loads(meta_path.read_text())
        return Corpus(spec, root / "trail", **meta)
    if root.exists():
        shutil.rmtree(root)
    t0 = time.monotonic()
    if log:
        print(f"building corpus {key}: {spec.files * spec.records_per_file * spec.replicas:,} records …", flush=True)
    trail = root / "trail"
    gen = Generator(
        seed=spec.seed, accounts=spec.accounts, queues_per_account=spec.queues_per_account, sqs_share=spec.sqs_share
    )
    base = trail / "r0" if spec.replicas > 1 else trail
    truth = gen.write(base, spec.files, spec.records_per_file, extras=spec.extras)
    for r in range(1, spec.replicas):
        for f in trail_files(base):
            dst = trail / f"r{r}" / f.relative_to(base)
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(f, dst)
            except OSError:
                shutil.copyfile(f, dst)
    comp = unc = 0
    for f in trail_files(base):
        data = f.read_bytes()
        comp += len(data)
        unc += len(igzip.decompress(data))
    n = spec.replicas
    meta = {
        "files": len(truth.files) * n,
        "records": (truth.records["sqs"] + truth.records["other"]) * n,
        "sqs": truth.records["sqs"] * n,
        "compressed_bytes": comp * n,
        "uncompressed_bytes": unc * n,
    }
    (root / "truth.json").write_bytes(msgspec.json.encode(truth.to_json()))
    meta_path.write_text(json.dumps(meta))
    if log:
        print(f"  done in {time.monotonic() - t0:.0f}s: {meta}", flush=True)
    return Corpus(spec, trail, **meta)
