"""Crash safety: qmail-send and qmail-queue are killed with SIGKILL at random
moments while messages are queued and delivered; afterwards every accepted
message has been delivered exactly once (or twice, only for deliveries that were
in progress when qmail-send was killed: qmail's documented window), nothing
half-written was delivered, and no queue file is left over once the 36-hour
cleanup has run (clock injected).

VQMAIL_CRASH_COUNT sets the number of messages (default 1000);
VQMAIL_CRASH_SEED the random seed (printed on failure).
"""
import errno
import os
import random
import signal
import subprocess
import threading
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

from harness import RootTestCase, wait_until
from test_queue_delivery import queue_files, send_once, setup_stubs

COUNT = int(os.environ.get("VQMAIL_CRASH_COUNT", "1000"))


class Crash(RootTestCase):
    def setUp(self):
        super().setUp()
        self.out = setup_stubs(self.root, remote=False)
        self.log = open(os.path.join(self.root.dir, "send.log"), "ab")
        self.addCleanup(self.log.close)
        self.groups = []
        self.proc = None
        self.addCleanup(self.stop_all)

    def start(self):
        self.proc = subprocess.Popen([self.root.bin("qmail-start"), "./Maildir/"], stderr=self.log,
                                     stdin=subprocess.DEVNULL, env=self.root.env(STUB_OUT=self.out),
                                     start_new_session=True)
        self.groups.append(self.proc.pid)

    def groups_gone(self):
        for g in self.groups:
            try:
                os.killpg(g, 0)
                return False
            except ProcessLookupError:
                pass
        return True

    def stop_all(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                pass
        try:
            wait_until(self.groups_gone, 20, what="helpers of killed qmail-sends to finish")
        finally:
            for g in self.groups:
                try:
                    os.killpg(g, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    def inject(self, i, seed):
        rnd = random.Random(seed * 100003 + i)
        body = (f"Subject: crash {i}\n\n" + "x" * rnd.randrange(10, 40000) + f"\nEND token-{i}\n").encode()
        envelope = f"Fs@localhost\0Tu{i % 7}@localhost\0\0".encode()
        r, w = os.pipe()
        os.write(w, envelope)
        os.close(w)
        p = subprocess.Popen([self.root.bin("qmail-queue")], stdin=subprocess.PIPE, stdout=r,
                             stderr=subprocess.DEVNULL, env=self.root.env())
        os.close(r)
        stage = rnd.randrange(12)  # 0..2: kill qmail-queue at some step, else let it finish
        try:
            if stage == 0:
                p.kill()
            elif stage == 1:
                p.stdin.write(body[: len(body) // 2])
                p.stdin.flush()
                p.kill()
            p.stdin.write(body)
            p.stdin.close()
            if stage == 2:
                time.sleep(rnd.uniform(0, 0.004))
                p.kill()
        except (BrokenPipeError, ValueError):
            pass
        return i, p.wait(), body

    def test_kill_send_and_queue_at_random(self):
        seed = int(os.environ.get("VQMAIL_CRASH_SEED", str(int(time.time()))))
        rnd = random.Random(seed)
        self.start()
        done = threading.Event()
        kills = [0]

        def killer():
            while not done.wait(rnd.uniform(0.1, 0.6)):
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
                kills[0] += 1
                self.start()

        kt = threading.Thread(target=killer)
        kt.start()
        try:
            with ThreadPoolExecutor(max_workers=4) as ex:
                results = list(ex.map(lambda i: self.inject(i, seed), range(COUNT)))
        finally:
            done.set()
            kt.join()
        accepted = {i for i, rc, _ in results if rc == 0}
        bodies = {i: b for i, _, b in results}
        self.assertGreater(len(accepted), COUNT // 2)
        # A qmail-queue killed between its todo link and the trigger leaves a
        # message for qmail-send's next scan of todo/ (25 minutes on, as in
        # qmail): pulled here, as the next message queued would.
        # (No reader: the qmail-send just started has not opened it yet, and
        # scans todo/ once it has, as qmail-queue takes it.)
        try:
            fd = os.open(self.root.q("queue", "lock", "trigger"), os.O_WRONLY | os.O_NONBLOCK)
        except OSError as e:
            if e.errno != errno.ENXIO:
                raise
        else:
            try:
                os.write(fd, b"\0")
            finally:
                os.close(fd)

        # Let the last qmail-send finish the queue, then stop everything.
        def queue_drained():
            return not any(f.startswith(("todo/", "info/")) for f in queue_files(self.root))
        wait_until(queue_drained, 120, interval=0.2, what=f"the queue to drain (seed {seed})")
        self.stop_all()

        counts = {}
        for d in os.listdir(self.out):
            dp = os.path.join(self.out, d)
            if not os.path.isdir(dp):
                continue
            for f in os.listdir(dp):
                self.assertFalse(f.startswith("."), f"stub left a temporary file {f}")
                with open(os.path.join(dp, f), "rb") as fh:
                    data = fh.read()
                i = int(data.rsplit(b"token-", 1)[1])
                # complete: exactly the bytes given to qmail-queue, after its Received line
                self.assertTrue(data.endswith(b"\n" + bodies[i]), f"message {i} damaged (seed {seed})")
                self.assertEqual(d, f"u{i % 7}@localhost")
                counts[i] = counts.get(i, 0) + 1
        lost = sorted(accepted - set(counts))
        self.assertEqual(lost, [], f"accepted but not delivered (seed {seed})")
        # A repeat needs a delivery in flight when qmail-send was killed: at most
        # one per kill and message, and at most 10 (concurrencylocal) per kill.
        extra = {i: n - 1 for i, n in counts.items() if n > 1}
        self.assertTrue(all(e <= kills[0] for e in extra.values()), f"seed {seed}")
        self.assertLessEqual(sum(extra.values()), kills[0] * 10, f"seed {seed}")
        self.assertGreater(kills[0], 0)

        # Orphans of killed qmail-queues go with the 36-hour cleanup.
        send_once(self.root, self.out, now=int(time.time()) + 129600 + 60)
        self.assertEqual(queue_files(self.root), [], f"seed {seed}")


if __name__ == "__main__":
    unittest.main()
