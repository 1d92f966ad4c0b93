#!/usr/bin/env python
"""Streaming demo: the tank digital twin on the DirectRunner, fed through the Pub/Sub emulator.

    .venv/bin/python specs/tank/demo.py

Starts the emulator, publishes inflow readings for three assets (out of order, one duplicate,
one malformed message), runs ``plugboard-beam process run tank.yaml --streaming`` until every
asset has sent its end-of-stream message, and prints what the twin published.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
import random
import subprocess
import sys

HERE = Path(__file__).resolve().parent


def main() -> int:
    from google.cloud import pubsub_v1

    from plugboard_beam.testing.emulator import Emulator

    project = "tank-demo"
    with Emulator(project=project) as emu:
        pub, sub = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
        topic = f"projects/{project}/topics/tank-inflow"
        pub.create_topic(name=topic)
        sub.create_subscription(name=f"projects/{project}/subscriptions/tank-inflow-demo", topic=topic)
        pub.create_topic(name=f"projects/{project}/topics/tank-state")
        results = f"projects/{project}/subscriptions/tank-state-demo"
        sub.create_subscription(name=results, topic=f"projects/{project}/topics/tank-state")
        readings = {"pump-1": [8.0, 8.0, 8.0, 2.0], "pump-2": [1.0, 12.0, 12.0], "pump-3": [30.0, 0.0]}
        messages = [(json.dumps({"inflow": v}).encode(), {"key": k, "seq": str(i)})
                    for k, vs in readings.items() for i, v in enumerate(vs)]
        messages += [(b"", {"key": k, "seq": str(len(vs)), "eos": "true"}) for k, vs in readings.items()]
        messages.append(messages[0])  # a redelivery: dropped
        random.Random(1).shuffle(messages)  # out of order: reordered by seq
        messages.append((b"oops", {"key": "pump-1", "seq": "9"}))  # malformed: dead-letter topic
        for data, attrs in messages:
            pub.publish(topic, data, **attrs).result()
        keys = HERE / "demo-keys.yaml"
        keys.write_text("".join(f"- key: {k}\n" for k in readings))
        env = dict(os.environ, PUBSUB_EMULATOR_HOST=emu.host, PUBSUB_PROJECT_ID=project)
        cli = str(Path(sys.executable).with_name("plugboard-beam"))
        run = subprocess.run([cli, "process", "run", "tank.yaml", "--streaming", "--scenarios", keys.name,
                              "-p", "sensor.subscription=tank-inflow-demo"], cwd=HERE, env=env)
        keys.unlink()
        resp = sub.pull(subscription=results, max_messages=100, timeout=10)
        for m in sorted(resp.received_messages,
                        key=lambda m: (m.message.attributes["key"], int(m.message.attributes["step"]))):
            a = m.message.attributes
            print(f"{a['key']} step {a['step']}: {m.message.data.decode() or '(end of stream, ' + a['count'] + ' steps)'}")
        return run.returncode


if __name__ == "__main__":
    sys.exit(main())
