"""Data parallelism: sharded batches, the global mean NLL, gradient all-reduce, train() under DDP, the launcher."""

from __future__ import annotations

import json
import runpy
import socket
import time

import pytest
import torch
import torch.nn.functional as F

from course_utils import distributed
from course_utils.losses import IGNORE_INDEX
from course_utils.models import Transformer, TransformerConfig
from course_utils.train import random_windows, train

# A worker script: small runs of train() under DistributedDataParallel on gloo; rank 0 writes what they recorded.
WORKER = '''
import json
import sys

import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from course_utils import distributed, runtime
from course_utils.losses import IGNORE_INDEX
from course_utils.models import Transformer, TransformerConfig
from course_utils.train import TrainConfig, random_windows, train

BATCH, CONTEXT = 8, 16
KEEP = torch.tensor([2, 3, 4, 5, 16, 16, 16, 16])  # counted targets per row: worker 0 of 2 holds 14, worker 1 64


def tokens():
    g = torch.Generator().manual_seed(0)
    noise = torch.randint(7, (4000,), generator=g)
    return torch.where(torch.rand(4000, generator=g) < 0.2, noise, torch.arange(4000) % 5)


def model():
    return Transformer(TransformerConfig(vocab_size=7, context=CONTEXT, n_layers=1, n_heads=2, d_model=16), seed=0)


def windows():
    return random_windows(tokens(), CONTEXT, BATCH)


def padded():
    """Windows whose first rows count only a few targets, as padding does: unequal shards."""
    source = windows()

    def draw(generator):
        x, y = source(generator)
        return x, y.masked_fill(torch.arange(CONTEXT)[None, :] >= KEEP[:, None], IGNORE_INDEX)
    return draw


def config(**settings):
    return TrainConfig(iterations=12, lr=3e-3, min_lr=3e-4, warmup=2, eval_every=6, eval_windows=4, seed=0,
                       device="cpu", precision="fp32", progress=False, **settings)


def nll(m, x, y):
    return F.cross_entropy(m(x).flatten(0, 1), y.flatten(), ignore_index=IGNORE_INDEX)


def gradient_gap():
    """Max |DDP's gradient of the token-weighted shard losses - the global batch's gradient| over the workers."""
    net = model().double()
    ddp = DistributedDataParallel(net)
    batch = padded()(torch.Generator().manual_seed(5))
    x, y = distributed.shard(batch, distributed.get_rank(), distributed.get_world_size())
    weighted, _ = distributed.token_weighted(nll(ddp, x, y), y)
    weighted.backward()
    gap = torch.tensor(distributed.max_difference([p.grad for p in net.parameters()],
                                                  distributed.batch_gradient(net, batch, nll)))
    torch.distributed.all_reduce(gap, op=torch.distributed.ReduceOp.MAX)
    return gap.item()


def main():
    out_path, checkpoint = sys.argv[1], sys.argv[2]
    val = tokens()[:200]
    out = {"world": distributed.get_world_size(), "gradient_gap": gradient_gap()}
    for name, source in (("windows", windows()), ("padded", padded())):
        out[name] = train(DistributedDataParallel(model()), distributed.sharded(source), val, config()).train_loss
    interrupted = config(checkpoint_path=checkpoint, checkpoint_every=6, stop_after=6)
    train(DistributedDataParallel(model()), distributed.sharded(windows()), val, interrupted)
    out["resumed"] = train(DistributedDataParallel(model()), distributed.sharded(windows()), val,
                           config(checkpoint_path=checkpoint, checkpoint_every=6), resume=True).train_loss
    if distributed.is_main():
        print(f"{out['world']} workers: done")
        with open(out_path, "w") as f:
            json.dump(out, f)


if __name__ == "__main__":
    runtime.setup(seed=0, threads=1)
    torch.distributed.init_process_group("gloo")
    main()
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()
'''


@pytest.fixture(scope="module")
def two_workers(tmp_path_factory):
    """One 2-process gloo run of WORKER: (its results, its log, its definitions, its folder)."""
    folder = tmp_path_factory.mktemp("ddp")
    script = folder / "worker.py"
    script.write_text(WORKER, encoding="utf-8")
    log = distributed.launch(script, nproc=2, args=[folder / "out.json", folder / "run.pt"], timeout=300)
    results = json.loads((folder / "out.json").read_text(encoding="utf-8"))
    return results, log, runpy.run_path(str(script)), folder


def _single_process(definitions: dict, source_name: str) -> list[float]:
    """The same run as the workers', in this process with the whole batch and no process group."""
    torch.manual_seed(0)
    history = train(definitions["model"](), definitions[source_name](), definitions["tokens"]()[:200],
                    definitions["config"]())
    return history.train_loss


# ---------------------------------------------------------------- two real processes

def test_two_gloo_processes_run_and_the_log_comes_back(two_workers):
    results, log, _, _ = two_workers
    assert results["world"] == 2
    assert "2 workers: done" in log


@pytest.mark.parametrize("source_name", ["windows", "padded"])
def test_two_processes_with_half_batches_follow_the_single_process_loss_curve(two_workers, source_name):
    results, _, definitions, _ = two_workers
    one = _single_process(definitions, source_name)
    two = results[source_name]
    assert len(one) == len(two) == 12
    assert max(abs(a - b) for a, b in zip(one, two, strict=True)) < 1e-5
    assert one[-1] < one[0] - 0.1  # the runs learn: the comparison is not between two flat lines


def test_token_weighting_makes_ddp_average_the_global_gradient_on_unequal_shards(two_workers):
    results, _, definitions, _ = two_workers
    assert results["gradient_gap"] < 1e-12
    # without the weighting, the plain average of the same two shards is far from the global gradient
    net, nll = definitions["model"]().double(), definitions["nll"]
    batch = definitions["padded"]()(torch.Generator().manual_seed(5))
    plain = distributed.simulate_all_reduce(net, [distributed.shard(batch, r, 2) for r in range(2)], nll)
    assert distributed.max_difference(plain, distributed.batch_gradient(net, batch, nll)) > 1e-3


def test_rank_0_alone_writes_the_checkpoint_and_the_resumed_run_continues_the_curve(two_workers):
    results, _, _, folder = two_workers
    assert sorted(p.name for p in folder.iterdir() if ".pt" in p.name) == ["run.pt"]
    assert torch.load(folder / "run.pt", weights_only=True)["step"] == 12
    assert results["resumed"] == results["windows"]  # bit for bit: same machine, same operations


# ---------------------------------------------------------------- the global objective, in one process

def test_the_global_mean_is_the_token_weighted_mean_of_the_workers_means():
    assert distributed.global_mean_nll([2.0, 1.0], [300, 100]) == pytest.approx(1.75, abs=1e-15)
    assert distributed.global_mean_nll([2.0, 1.0], [50, 50]) == pytest.approx(1.5, abs=1e-15)
    assert distributed.global_mean_nll([3.5, 8.8], [20, 0]) == pytest.approx(3.5, abs=1e-15)


@pytest.mark.parametrize(("means", "counts", "message"), [
    ([1.0, 2.0], [3], "one entry per worker"),
    ([1.0, 2.0], [3, -1], "whole numbers >= 0"),
    ([1.0, 2.0], [0, 0], "positive total"),
    ([1.0, 2.0], [1.5, 2], "whole numbers"),
    ([float("nan"), 2.0], [1, 2], "means contains NaN"),
    ([], [], "means is empty"),
])
def test_global_mean_nll_rejects_bad_input(means, counts, message):
    with pytest.raises(ValueError, match=message):
        distributed.global_mean_nll(means, counts)


def _batch(rows: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    windows = torch.randint(7, (rows, 9), generator=torch.Generator().manual_seed(seed))
    return windows[:, :-1], windows[:, 1:]


def test_shards_are_consecutive_equal_blocks_that_rebuild_the_batch():
    x, y = _batch()
    parts = [distributed.shard((x, y), rank, 4) for rank in range(4)]
    assert all(p[0].shape == (2, 8) for p in parts)
    assert torch.equal(torch.cat([p[0] for p in parts]), x) and torch.equal(torch.cat([p[1] for p in parts]), y)
    assert torch.equal(distributed.shard((x, y), 0, 1)[0], x)


@pytest.mark.parametrize(("rank", "world", "message"), [
    (0, 3, "8 rows does not split evenly across 3 workers"),
    (2, 2, "rank must be a worker rank in 0..1"),
    (0, 0, "world_size must be a positive integer"),
])
def test_shard_rejects_what_cannot_be_split(rank, world, message):
    with pytest.raises(ValueError, match=message):
        distributed.shard(_batch(), rank, world)


def test_sharded_sources_see_together_exactly_the_single_processs_batches():
    source = random_windows(torch.arange(500) % 7, 8, 6)
    single = torch.Generator().manual_seed(3)
    workers = [(distributed.sharded(source, rank, 3), torch.Generator().manual_seed(3)) for rank in range(3)]
    for _ in range(4):
        x, y = source(single)
        parts = [draw(g) for draw, g in workers]
        assert torch.equal(torch.cat([p[0] for p in parts]), x) and torch.equal(torch.cat([p[1] for p in parts]), y)
    assert torch.equal(distributed.sharded(source)(torch.Generator().manual_seed(1))[0],
                       source(torch.Generator().manual_seed(1))[0])  # outside a process group: rank 0 of 1
    with pytest.raises(ValueError, match="batch source"):
        distributed.sharded(torch.arange(5), 0, 1)


def test_split_rows_allows_unequal_shards_that_add_up():
    parts = distributed.split_rows(_batch(), [1, 2, 5])
    assert [p[0].shape[0] for p in parts] == [1, 2, 5]
    with pytest.raises(ValueError, match="add up to 7, not to the batch's 8 rows"):
        distributed.split_rows(_batch(), [2, 5])


@pytest.mark.parametrize("bad", [_batch()[0], (_batch()[0], _batch()[1][:, :4]), (_batch()[0][0], _batch()[1][0]),
                                 (*_batch(), None)])
def test_a_batch_that_is_not_two_tensors_of_one_shape_is_named(bad):
    with pytest.raises(ValueError, match=r"a batch must be \(inputs, targets\): two tensors of one shape"):
        distributed.shard(bad, 0, 1)
    with pytest.raises(ValueError, match=r"a batch source must return \(inputs, targets\)"):
        distributed.batch_pair(bad, "a batch source must return")
    x, y = _batch()
    assert distributed.batch_pair([x, y])[0] is x and distributed.batch_pair((x, y))[1] is y


def _model_and_loss():
    model = Transformer(TransformerConfig(vocab_size=7, context=8, n_layers=1, n_heads=2, d_model=16), seed=1)

    def nll(m, x, y):
        return F.cross_entropy(m(x).flatten(0, 1), y.flatten(), ignore_index=IGNORE_INDEX)
    return model.double(), nll


@pytest.mark.parametrize("k", [1, 2, 4, 8])
def test_averaging_equal_shards_gradients_is_the_global_gradient(k):
    model, nll = _model_and_loss()
    batch = _batch()
    averaged = distributed.simulate_all_reduce(model, [distributed.shard(batch, r, k) for r in range(k)], nll)
    assert distributed.max_difference(averaged, distributed.batch_gradient(model, batch, nll)) < 1e-12


def test_unequal_shards_need_the_token_weighted_average():
    model, nll = _model_and_loss()
    x, y = _batch()
    y = y.clone()
    y[:4, 2:] = IGNORE_INDEX
    shards = distributed.split_rows((x, y), [4, 4])
    whole = distributed.batch_gradient(model, (x, y), nll)
    assert distributed.max_difference(distributed.simulate_all_reduce(model, shards, nll), whole) > 1e-3
    assert distributed.max_difference(distributed.simulate_all_reduce(model, shards, nll, weighted=True), whole) < 1e-12
    with pytest.raises(ValueError, match="shards is empty"):
        distributed.simulate_all_reduce(model, [], nll)


def test_token_weighted_outside_a_process_group_leaves_the_loss_alone():
    loss = torch.tensor(1.25, requires_grad=True)
    weighted, global_loss = distributed.token_weighted(loss, torch.tensor([[1, 2, IGNORE_INDEX]]))
    assert weighted.item() == 1.25 and global_loss.item() == 1.25
    assert distributed.get_rank() == 0 and distributed.get_world_size() == 1 and distributed.is_main()
    model = torch.nn.Linear(2, 2)
    assert distributed.unwrap(model) is model and not distributed.is_data_parallel(model)


def test_max_difference_needs_matching_lists():
    with pytest.raises(ValueError, match="same shapes"):
        distributed.max_difference([torch.zeros(2)], [torch.zeros(3)])


# ---------------------------------------------------------------- the launcher's errors

def test_a_missing_script_is_a_value_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        distributed.launch(tmp_path / "nope.py")


def test_a_missing_launcher_is_named(tmp_path):
    script = tmp_path / "s.py"
    script.write_text("print('never runs')\n")
    with pytest.raises(RuntimeError, match="the launcher 'no-such-torchrun-7' was not found on PATH"):
        distributed.launch(script, launcher="no-such-torchrun-7")


def test_a_taken_port_is_named(tmp_path):
    script = tmp_path / "s.py"
    script.write_text("print('never runs')\n")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert not distributed.port_is_free(port)
        with pytest.raises(ValueError, match=f"port {port} is already in use"):
            distributed.launch(script, port=port)
    assert distributed.port_is_free(distributed.free_port())


@pytest.mark.parametrize(("settings", "message"), [
    ({"nproc": 0}, "nproc must be a positive integer"),
    ({"timeout": 0}, "timeout must be"),
    ({"threads": 0}, "threads must be a positive integer"),
    ({"port": 70000}, "port must be a TCP port"),
])
def test_launch_rejects_bad_settings(tmp_path, settings, message):
    script = tmp_path / "s.py"
    script.write_text("print('never runs')\n")
    with pytest.raises(ValueError, match=message):
        distributed.launch(script, **settings)


def test_a_failing_worker_is_a_runtime_error_with_the_logs_end(tmp_path):
    script = tmp_path / "fails.py"
    script.write_text("import os\nraise SystemExit(f\"worker {os.environ['RANK']} gives up: no data here\")\n")
    with pytest.raises(RuntimeError, match="a worker failed") as info:
        distributed.launch(script, nproc=2, timeout=120)
    assert "gives up: no data here" in str(info.value)


def test_a_run_past_its_timeout_is_stopped_and_named(tmp_path):
    script = tmp_path / "hangs.py"
    script.write_text("import time\ntime.sleep(600)\n")
    started = time.perf_counter()
    with pytest.raises(RuntimeError, match="did not finish within 3 s"):
        distributed.launch(script, nproc=1, timeout=3)
    assert time.perf_counter() - started < 30
