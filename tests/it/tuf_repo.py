"""A real TUF repository for custody's trust tests, made with python-tuf.

Usage: tuf_repo.py DIR COMMAND [ARG]
  init TARGET          keys, root v1, targets with TARGET as trusted_root.json, snapshot, timestamp
  publish TARGET       a new trusted_root.json: targets, snapshot and timestamp versions +1
  rotate-root          root vN+1 with a new root key, signed by the old and the new key
  expire-timestamp     a new timestamp version that expired yesterday
  rollback-snapshot    a new timestamp naming the previous snapshot version
  tamper-target        the current trusted_root.json file changes after targets was signed

DIR/repo is what the mirror serves (metadata at the top, targets under targets/); DIR/keys and
DIR/state.json are the repository owner's. Consistent snapshots are on, as on public-good.
"""

import hashlib
import json
import shutil
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from securesystemslib.signer import CryptoSigner
from tuf.api.metadata import (
    MetaFile,
    Metadata,
    Root,
    Snapshot,
    TargetFile,
    Targets,
    Timestamp,
)
from tuf.api.serialization.json import JSONSerializer


def days(n):
    return (datetime.now(timezone.utc) + timedelta(days=n)).replace(microsecond=0)


class Repo:
    def __init__(self, d):
        self.d = Path(d)
        self.repo = self.d / "repo"
        self.keys = self.d / "keys"
        self.state_file = self.d / "state.json"

    def signer(self, name):
        pem = (self.keys / f"{name}.pem").read_bytes()
        return CryptoSigner(load_pem_private_key(pem, None))

    def new_signer(self, name):
        s = CryptoSigner.generate_ecdsa()
        self.keys.mkdir(parents=True, exist_ok=True)
        (self.keys / f"{name}.pem").write_bytes(s.private_bytes)
        return s

    def load_state(self):
        return json.loads(self.state_file.read_text())

    def save_state(self, st):
        self.state_file.write_text(json.dumps(st))

    def write(self, md, name):
        data = md.to_bytes(JSONSerializer(compact=False))
        (self.repo / name).write_bytes(data)
        return data

    def write_root(self, root, signers):
        md = Metadata(root)
        for s in signers:
            md.sign(s, append=True)
        self.write(md, f"{root.version}.root.json")

    def write_target(self, data):
        digest = hashlib.sha256(data).hexdigest()
        (self.repo / "targets").mkdir(parents=True, exist_ok=True)
        (self.repo / "targets" / f"{digest}.trusted_root.json").write_bytes(data)
        return TargetFile.from_data("trusted_root.json", data, ["sha256"])

    def sign_online(self, signed):
        md = Metadata(signed)
        md.sign(self.signer("online"))
        return md

    def snapshot_and_timestamp(self, st, snapshot_version=None, timestamp_expires=None):
        if snapshot_version is None:
            st["snapshot"] += 1
            snap = Snapshot(version=st["snapshot"], expires=days(365))
            snap.meta["targets.json"] = MetaFile(version=st["targets"])
            data = self.write(self.sign_online(snap), f"{st['snapshot']}.snapshot.json")
            st["snapshot_meta"] = {"length": len(data), "sha256": hashlib.sha256(data).hexdigest()}
            snapshot_version = st["snapshot"]
        st["timestamp"] += 1
        ts = Timestamp(version=st["timestamp"], expires=timestamp_expires or days(7))
        ts.snapshot_meta = MetaFile(version=snapshot_version)
        self.write(self.sign_online(ts), "timestamp.json")

    def publish_targets(self, st, data):
        st["targets"] += 1
        targets = Targets(version=st["targets"], expires=days(365))
        targets.targets["trusted_root.json"] = self.write_target(data)
        md = Metadata(targets)
        md.sign(self.signer(f"root{st['root_key']}"))
        self.write(md, f"{st['targets']}.targets.json")


def main():
    d, command = sys.argv[1], sys.argv[2]
    arg = sys.argv[3] if len(sys.argv) > 3 else None
    r = Repo(d)
    if command == "init":
        r.repo.mkdir(parents=True, exist_ok=True)
        root_key = r.new_signer("root1")
        online = r.new_signer("online")
        root = Root(version=1, expires=days(365), consistent_snapshot=True)
        root.add_key(root_key.public_key, "root")
        root.add_key(root_key.public_key, "targets")
        root.add_key(online.public_key, "snapshot")
        root.add_key(online.public_key, "timestamp")
        r.write_root(root, [root_key])
        shutil.copy(r.repo / "1.root.json", r.d / "initial-root.json")
        st = {"root": 1, "root_key": 1, "targets": 0, "snapshot": 0, "timestamp": 0}
        r.publish_targets(st, Path(arg).read_bytes())
        r.snapshot_and_timestamp(st)
        r.save_state(st)
    elif command == "publish":
        st = r.load_state()
        r.publish_targets(st, Path(arg).read_bytes())
        r.snapshot_and_timestamp(st)
        r.save_state(st)
    elif command == "rotate-root":
        st = r.load_state()
        old = r.signer(f"root{st['root_key']}")
        new = r.new_signer(f"root{st['root_key'] + 1}")
        root = Metadata.from_file(str(r.repo / f"{st['root']}.root.json")).signed
        root.version += 1
        root.revoke_key(old.public_key.keyid, "root")
        root.revoke_key(old.public_key.keyid, "targets")
        root.add_key(new.public_key, "root")
        root.add_key(new.public_key, "targets")
        r.write_root(root, [old, new])
        st["root"] += 1
        st["root_key"] += 1
        # targets are signed by the root key here: re-sign them with the new one.
        current = json.loads((r.repo / f"{st['targets']}.targets.json").read_text())
        digest = current["signed"]["targets"]["trusted_root.json"]["hashes"]["sha256"]
        r.publish_targets(st, (r.repo / "targets" / f"{digest}.trusted_root.json").read_bytes())
        r.snapshot_and_timestamp(st)
        r.save_state(st)
    elif command == "publish-signing-config":
        # A new targets version that keeps trusted_root.json and adds the signing config.
        st = r.load_state()
        targets = Metadata.from_file(str(r.repo / f"{st['targets']}.targets.json")).signed
        data = Path(arg).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        (r.repo / "targets" / f"{digest}.signing_config.v0.2.json").write_bytes(data)
        st["targets"] += 1
        targets.version = st["targets"]
        targets.targets["signing_config.v0.2.json"] = TargetFile.from_data(
            "signing_config.v0.2.json", data, ["sha256"]
        )
        md = Metadata(targets)
        md.sign(r.signer(f"root{st['root_key']}"))
        r.write(md, f"{st['targets']}.targets.json")
        r.snapshot_and_timestamp(st)
        r.save_state(st)
    elif command == "expire-timestamp":
        st = r.load_state()
        r.snapshot_and_timestamp(st, snapshot_version=st["snapshot"], timestamp_expires=days(-1))
        r.save_state(st)
    elif command == "rollback-snapshot":
        st = r.load_state()
        r.snapshot_and_timestamp(st, snapshot_version=st["snapshot"] - 1)
        r.save_state(st)
    elif command == "tamper-target":
        st = r.load_state()
        current = json.loads((r.repo / f"{st['targets']}.targets.json").read_text())
        digest = current["signed"]["targets"]["trusted_root.json"]["hashes"]["sha256"]
        path = r.repo / "targets" / f"{digest}.trusted_root.json"
        path.write_bytes(path.read_bytes().replace(b"sigstore", b"s1gstore", 1))
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
