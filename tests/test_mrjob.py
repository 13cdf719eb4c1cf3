"""MapReduce jobs in Python (sqlmr.MRJob): word count over a generated corpus
checked against collections.Counter, through the Python API, `sqlmr run` and
the Lambda backend; the user's traceback on a failing mapper; clear errors."""

from __future__ import annotations

import importlib.util
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from aws_fixtures import aws_reset, moto_server, s3_bucket  # noqa: F401
from sqlmr.mrjob import MRJobDefinitionError, find_job_class

REPO = Path(__file__).resolve().parents[1]

WORDCOUNT = '''from sqlmr import MRJob


class WordCount(MRJob):
    def mapper(self, line):
        yield from ((w, 1) for w in line.split())
{combiner}
    def reducer(self, key, values):
        yield key, sum(values)
'''
COMBINER = '''
    def combiner(self, key, values):
        yield key, sum(values)
'''


def corpus(folder: Path, files: int = 4, lines: int = 400, seed: int = 7) -> Counter:
    """Text files of Zipf-ish random words; the word counts they hold."""
    rnd = random.Random(seed)
    vocab = [f"w{i}" for i in range(300)] + ["é", "naïve", "x\\y", '"q"']
    weights = [1 / (i + 1) for i in range(len(vocab))]
    folder.mkdir(parents=True)
    counts: Counter = Counter()
    for f in range(files):
        out = []
        for _ in range(lines):
            words = rnd.choices(vocab, weights, k=rnd.randint(0, 12))
            counts.update(words)
            out.append(" ".join(words))
        (folder / f"doc{f}.txt").write_text("\n".join(out) + "\n", encoding="utf-8")
    return counts


def read_counts(folder: Path) -> Counter:
    """The part files' ``word\\tcount`` lines (each word once)."""
    got: Counter = Counter()
    parts = sorted(folder.glob("part-*"))
    assert parts
    for p in parts:
        for line in p.read_text(encoding="utf-8").splitlines():
            key, value = line.split("\t")
            assert key not in got
            got[key] = int(value)
    return got


def job_file(tmp_path: Path, name: str, text: str) -> Path:
    folder = tmp_path / "jobs"
    folder.mkdir(exist_ok=True)
    path = folder / f"{name}.py"
    path.write_text(text, encoding="utf-8")
    return path


def import_class(path: Path, name: str) -> type:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = mod
    spec.loader.exec_module(mod)
    return getattr(mod, name)


def sqlmr_run(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "sqlmr", "run", *args], capture_output=True,
                          text=True, env=env, timeout=300)


@pytest.mark.parametrize("combiner", [True, False])
def test_python_api_word_count_equals_counter(tmp_path, combiner, capsys):
    expected = corpus(tmp_path / "docs")
    path = job_file(tmp_path, f"wc_api_{combiner}", WORDCOUNT.format(
        combiner=COMBINER if combiner else ""))
    WordCount = import_class(path, "WordCount")
    result = WordCount.run(input=str(tmp_path / "docs"), output=str(tmp_path / "counts"),
                           backend="local", workers=2, split_mb=0.002, reducers=3)
    assert result.stats.map_tasks > 2 and result.stats.reduce_tasks == 3
    assert read_counts(tmp_path / "counts") == expected
    assert result.stats.bytes_shuffled > 0
    err = capsys.readouterr().err   # the time and cost lines, as after a query
    assert "3 reduce tasks on local" in err and "Cost: Lambda" in err
    # without an output folder the lines come back
    lines = WordCount.run(input=str(tmp_path / "docs"), workers=2, split_mb=0.002).lines
    assert Counter({k: int(v) for k, v in (ln.split("\t") for ln in lines)}) == expected


def test_the_combiner_shrinks_the_shuffle(tmp_path):
    corpus(tmp_path / "docs")
    shuffled = {}
    for combiner in (True, False):
        path = job_file(tmp_path, f"wc_shuffle_{combiner}", WORDCOUNT.format(
            combiner=COMBINER if combiner else ""))
        result = import_class(path, "WordCount").run(
            input=str(tmp_path / "docs"), workers=2, split_mb=0.004, reducers=2)
        shuffled[combiner] = result.stats.bytes_shuffled
    assert shuffled[True] < shuffled[False] / 2


@pytest.mark.parametrize("combiner", [True, False])
def test_sqlmr_run_word_count_equals_counter(tmp_path, combiner):
    expected = corpus(tmp_path / "docs")
    path = job_file(tmp_path, "wordcount", WORDCOUNT.format(
        combiner=COMBINER if combiner else ""))
    p = sqlmr_run(str(path), "--input", str(tmp_path / "docs"), "--output",
                  str(tmp_path / "out"), "--split-mb", "0.002", "--reducers", "4",
                  "--workers", "2")
    assert p.returncode == 0, p.stderr
    assert read_counts(tmp_path / "out") == expected
    assert "wrote" in p.stderr and "Cost: Lambda" in p.stderr and "4 reduce" in p.stderr
    # a second run refuses to write into the folder now holding parts
    again = sqlmr_run(str(path), "--input", str(tmp_path / "docs"), "--output",
                      str(tmp_path / "out"))
    assert again.returncode == 2 and "not empty" in again.stderr
    assert "Traceback" not in again.stderr


def test_sqlmr_run_prints_lines_without_output(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("to be or\nnot to be\n")
    # a file that runs itself when imported: the tasks import it and only define the class
    path = job_file(tmp_path, "wc", WORDCOUNT.format(combiner="") +
                    '\nWordCount.run(input="/no/such/folder")\n')
    p = sqlmr_run(str(path), "--input", str(tmp_path / "docs"), "--no-timing")
    assert p.returncode == 0, p.stderr
    assert sorted(p.stdout.splitlines()) == ["be\t2", "not\t1", "or\t1", "to\t2"]


def test_a_raising_mapper_reports_the_users_traceback(tmp_path):
    corpus(tmp_path / "docs", files=2, lines=50)
    path = job_file(tmp_path, "bad", '''from sqlmr import MRJob


class Bad(MRJob):
    def mapper(self, line):
        for w in line.split():
            yield w, check(w)


def check(w):
    if w == "w3":
        raise ValueError("no w3 please")
    return 1
''')
    p = sqlmr_run(str(path), "--input", str(tmp_path / "docs"), "--workers", "2")
    assert p.returncode == 1
    assert 'File "bad.py", line 7, in mapper' in p.stderr
    assert 'File "bad.py", line 12, in check' in p.stderr
    assert "ValueError: no w3 please" in p.stderr


def test_keys_must_be_json_able(tmp_path):
    corpus(tmp_path / "docs", files=1, lines=5)
    path = job_file(tmp_path, "setkey", '''from sqlmr import MRJob


class SetKey(MRJob):
    def mapper(self, line):
        yield {1, 2}, 1
''')
    p = sqlmr_run(str(path), "--input", str(tmp_path / "docs"), "--workers", "1")
    assert p.returncode == 1
    assert "a key must be JSON-able" in p.stderr


HISTOGRAM = '''from sqlmr import MRJob, MRStep


class Histogram(MRJob):
    """How many words occur n times, for each n (two steps)."""

    def steps(self):
        return [MRStep(mapper=self.words, combiner=self.add, reducer=self.add),
                MRStep(mapper=self.by_count, reducer=self.add)]

    def words(self, line):
        for w in line.split():
            yield w, 1

    def add(self, key, counts):
        yield key, sum(counts)

    def by_count(self, word, count):
        yield count, 1
'''


def test_multi_step_job_chains_stages(tmp_path):
    expected = Counter(corpus(tmp_path / "docs").values())
    path = job_file(tmp_path, "histogram", HISTOGRAM)
    p = sqlmr_run(str(path), "--input", str(tmp_path / "docs"), "--output",
                  str(tmp_path / "out"), "--split-mb", "0.002", "--reducers", "3",
                  "--workers", "2")
    assert p.returncode == 0, p.stderr
    assert {int(k): v for k, v in read_counts(tmp_path / "out").items()} == expected
    # the same through the Python API (steps() is called on the driver there)
    result = import_class(path, "Histogram").run(input=str(tmp_path / "docs"), workers=2,
                                                 split_mb=0.002, reducers=2)
    assert Counter({int(k): int(v) for k, v in (ln.split("\t") for ln in result.lines)}) \
        == expected
    assert result.stats.reduce_tasks == 4


def test_job_files_sqlmr_cannot_run_are_refused_before_any_task(tmp_path):
    steps = job_file(tmp_path, "steps", '''import sqlmr


class Two(sqlmr.MRJob):
    def steps(self):
        return make_steps()
''')
    with pytest.raises(MRJobDefinitionError, match=r"steps\(\) must return a list of MRStep"):
        find_job_class(str(steps))
    none = job_file(tmp_path, "none", "class A:\n    pass\n")
    with pytest.raises(MRJobDefinitionError, match="expected one class deriving from MRJob"):
        find_job_class(str(none))
    p = sqlmr_run(str(steps), "--input", str(tmp_path))
    assert p.returncode == 2 and "steps()" in p.stderr and "Traceback" not in p.stderr
    wc = job_file(tmp_path, "wc", WORDCOUNT.format(combiner=""))
    p = sqlmr_run(str(wc), "--input", str(tmp_path / "nothing"))
    assert p.returncode == 2 and "nothing does not exist" in p.stderr
    assert "Traceback" not in p.stderr


def test_word_count_on_the_lambda_backend(tmp_path, aws_reset, s3_bucket, monkeypatch):
    pytest.importorskip("moto")
    import boto3
    from aws_fixtures import run_lambda_locally
    from sqlmr.aws import deploy
    expected = corpus(tmp_path / "docs", files=3, lines=200)
    s3 = boto3.client("s3", region_name="us-east-1")
    for f in sorted((tmp_path / "docs").iterdir()):
        s3.put_object(Bucket=s3_bucket, Key=f"docs/{f.name}", Body=f.read_bytes())
    run_lambda_locally(monkeypatch, s3_bucket)
    try:
        path = job_file(tmp_path, "wc_lambda", WORDCOUNT.format(combiner=COMBINER))
        result = import_class(path, "WordCount").run(
            input=f"s3://{s3_bucket}/docs/", output=f"s3://{s3_bucket}/counts/",
            backend="lambda", split_mb=0.002, reducers=3)
    finally:
        deploy.forget_deployments()
    got: Counter = Counter()
    listed = s3.list_objects_v2(Bucket=s3_bucket, Prefix="counts/")["Contents"]
    for obj in listed:
        body = s3.get_object(Bucket=s3_bucket, Key=obj["Key"])["Body"].read().decode()
        for line in body.splitlines():
            k, v = line.split("\t")
            got[k] += int(v)
    assert got == expected
    assert result.stats.metered and result.stats.reduce_tasks == 3
