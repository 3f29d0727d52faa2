"""Hands a freed free-tier slot to the next queued run at once.

When the quota refuses a run's pod, the Job controller retries with an exponential backoff
that grows to about a minute, so a queued run could sit idle long after a slot frees. Any
update to a Job re-queues it within about a second: so when a free pod finishes or goes
away, this annotates the run first in the queue, and the controller tries it again at once.
"""
import logging
import threading
import time
from datetime import datetime, timezone

import runs
from kubectl_wrap import KubectlError

log = logging.getLogger("handoff")
ANNOTATION = "img-classification/slot-freed-at"
RETRY_SECONDS = 5.0


def frees_a_slot(event, pod, phase, finished):
    """Whether a watch event means a pod stopped holding quota. `finished` holds the pods
    already counted, so the several events of one finish count once."""
    if event == "DELETED":
        counted = pod in finished
        finished.discard(pod)
        return not counted and phase not in runs.FINISHED
    if phase in runs.FINISHED and pod not in finished:
        finished.add(pod)
        return True
    return False


# A nudged run's pod appears within about a second; until then the next slot goes to the next run.
NUDGE_MEMORY_SECONDS = 3.0


def next_in_queue(jobs, pods, namespace, recently_nudged=()):
    """The name of the free run first in line for a slot of that namespace, passing over the
    runs just nudged (two slots freed at once go to positions 1 and 2), or None."""
    waiting = sorted((run for run in runs.listing(jobs, pods)
                      if run["namespace"] == namespace and run["queue_position"]),
                     key=lambda run: run["queue_position"])
    return next((run["name"] for run in waiting if run["name"] not in recently_nudged), None)


class QueueHandoff:
    """A thread that watches one namespace's pods and nudges its queued Jobs."""

    def __init__(self, kubectl, namespace):
        self.kubectl = kubectl
        self.namespace = namespace
        self.stopping = threading.Event()
        self.nudged = {}  # run name -> when it was nudged (time.monotonic())
        self.thread = threading.Thread(target=self._watch, name="queue-handoff", daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self.stopping.set()

    def nudge(self):
        """Re-queues the run first in line, so it, not a later one, takes the freed slot."""
        now = time.monotonic()
        self.nudged = {name: at for name, at in self.nudged.items() if now - at < NUDGE_MEMORY_SECONDS}
        name = next_in_queue(self.kubectl.jobs(), self.kubectl.service_pods(), self.namespace,
                             self.nudged)
        if name:
            self.nudged[name] = now
            stamp = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
            self.kubectl.annotate_jobs(self.namespace, [name], ANNOTATION, stamp)

    def _watch(self):
        finished = set()
        while not self.stopping.is_set():
            try:
                for event, pod, phase in self.kubectl.watch_pods(self.namespace):
                    if self.stopping.is_set():
                        return
                    if frees_a_slot(event, pod, phase, finished):
                        self.nudge()
            except KubectlError as error:
                # The cluster went away: try again a little later, without flooding the log.
                log.warning("queue hand-off paused: %s", error)
                self.stopping.wait(RETRY_SECONDS)
            # Otherwise the watch reached its own time limit: it starts again at once.
