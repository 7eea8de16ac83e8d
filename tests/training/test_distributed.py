"""The pure parts of distributed training: GPU selection, threads, the cluster spec, the driver's channel."""

from __future__ import annotations

import json
import socket

import pytest

from sparkvision.training import channel
from sparkvision.training.distributed import tf_config, threads_per_worker, visible_devices


def test_a_task_sees_the_gpus_spark_gave_it_and_no_other():
    assert visible_devices([], None) == ""  # CPU task: hide every GPU (nothing changes without one)
    assert visible_devices([], "0,1") == ""
    assert visible_devices(["1"], None) == "1"
    assert visible_devices(["0", "2"], None) == "0,2"
    # The executor already sees only some GPUs: Spark's addresses index into that list.
    assert visible_devices(["1"], "4,5,6") == "5"
    with pytest.raises(ValueError):
        visible_devices(["GPU-7f3c"], None)


def test_workers_on_one_host_share_its_cpus():
    hosts = ["10.0.0.1", "10.0.0.1", "10.0.0.2"]
    assert threads_per_worker(2, hosts, "10.0.0.1") == 1
    assert threads_per_worker(16, hosts, "10.0.0.2") == 16
    assert threads_per_worker(1, hosts, "10.0.0.1") == 1
    # On a cluster no more than the task's cores (spark.task.cpus), the rest of the executor is others'.
    assert threads_per_worker(16, hosts, "10.0.0.2", task_cpus=1) == 1
    assert threads_per_worker(16, hosts, "10.0.0.1", task_cpus=12) == 8


def test_tf_config_names_every_worker_and_this_one():
    config = json.loads(tf_config(["a:1", "b:2"], 1))
    assert config == {"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}


def test_the_channel_carries_headers_and_files_both_ways_and_refuses_strangers():
    seen = []

    def echo(header, files):
        seen.append((header, files))
        return {"got": sorted(files)}, {"back": files["blob"][::-1]}

    def broken(header, files):
        raise OSError("disk full")

    with channel.Coordinator("127.0.0.1", {"echo": echo, "broken": broken}) as coordinator:
        blob = bytes(range(256)) * 5000
        reply, files = channel.request(coordinator.address, coordinator.token, "echo", {"n": 1}, {"blob": blob})
        assert reply == {"got": ["blob"]} and files == {"back": blob[::-1]}
        assert seen[0][0] == {"n": 1}  # the kind and the token are not the handler's business
        with pytest.raises(RuntimeError, match="wrong token"):
            channel.request(coordinator.address, "guess", "echo")
        with pytest.raises(RuntimeError, match="OSError: disk full"):
            channel.request(coordinator.address, coordinator.token, "broken")
        with pytest.raises(RuntimeError, match="unknown request"):
            channel.request(coordinator.address, coordinator.token, "other")
        with socket.create_connection(coordinator.address) as sock:  # garbage is dropped, the server lives on
            sock.sendall(b"\x00\x00\x00\x05nojson")
        assert channel.request(coordinator.address, coordinator.token, "echo", files={"blob": b"x"})[1] == {
            "back": b"x"
        }
    assert len(seen) == 2
