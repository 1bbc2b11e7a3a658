"""Keras Tuner's chief/worker mode, imported only when workers run (it loads gRPC).

Keras Tuner's own server (keras_tuner.src.distribute.oracle_chief) is used
with four changes, all in ChiefServicer: the chief writes trials.csv and a
progress line when a trial ends; a worker that stops sending heartbeats has
its trial handed to another worker; workers wait (IDLE) rather than stop
while another's trial may still need retrying; and the chief counts failed
trials itself (Keras Tuner's check raises inside the server).
"""

import logging
import threading
import time
from concurrent import futures

from lyrics_cifar_search.runners import compat, search_progress, trials_table
from lyrics_cifar_search.runners.keras_search.oracles import metrics_of, number, status_of
from lyrics_cifar_search.suite_common import UserError

logger = logging.getLogger(__name__)

KT = compat.keras_tuner_distribute()  # Keras Tuner's own protos, client, servicer and Trial
protos, trial_module = KT.protos, KT.trial
STALE_S = 20  # a trial whose worker has been silent this long goes to another worker


class PatientClient(KT.OracleClient):
    """Keras Tuner's client; waits a second before asking again when told IDLE (it asks in a tight loop)."""

    def create_trial(self, tuner_id):
        trial = super().create_trial(tuner_id)
        if trial.status == trial_module.TrialStatus.IDLE:
            time.sleep(1)
        return trial


class Heartbeat:
    """Asks the chief for the running trial every trials_table.HEARTBEAT_S seconds: the chief reads that as 'alive'."""

    def __init__(self, client, trial_id):
        self._stop = threading.Event()
        request = protos.get_service().GetTrialRequest(trial_id=trial_id)

        def beat():
            while not self._stop.wait(trials_table.HEARTBEAT_S):
                try:
                    client.stub.GetTrial(request, timeout=trials_table.HEARTBEAT_S)
                except Exception:  # the chief is busy or restarting: the next beat may get through
                    pass

        threading.Thread(target=beat, daemon=True).start()

    def stop(self):
        self._stop.set()


class ChiefServicer(protos.get_service_grpc().OracleServicer):
    def __init__(self, tuner, max_trials):
        self.tuner, self.oracle, self.max_trials = tuner, tuner.oracle, max_trials
        self.base = KT.OracleServicer(self.oracle)  # Keras Tuner's own request handlers
        self.lock = threading.Lock()  # one request at a time, as in Keras Tuner's server
        self.seen = {}  # trial id -> last time its worker was heard from
        self.stopping = False  # no new trials: the oracle said so, Ctrl-C, or too many failures
        self.oracle.verbose = 0  # Keras Tuner's own display; the chief prints progress lines instead
        # A run stopped by older versions may have saved a finished trial as still running,
        # which the reload put up for retry: it is finished, so it does not run again.
        queue = compat.retry_queue(self.oracle)
        queue[:] = [t for t in queue if t not in self.oracle.end_order]

    def GetSpace(self, request, context):
        with self.lock:
            return self.base.GetSpace(request, context)

    def UpdateSpace(self, request, context):
        with self.lock:
            return self.base.UpdateSpace(request, context)

    def UpdateTrial(self, request, context):
        with self.lock:
            self.seen[request.trial_id] = time.time()
            return self.base.UpdateTrial(request, context)

    def GetTrial(self, request, context):  # also the workers' heartbeat
        with self.lock:
            self.seen[request.trial_id] = time.time()
            return self.base.GetTrial(request, context)

    def GetBestTrials(self, request, context):
        with self.lock:
            return self.base.GetBestTrials(request, context)

    def CreateTrial(self, request, context):
        with self.lock:
            oracle, tuner_id = self.oracle, request.tuner_id
            if tuner_id not in oracle.ongoing_trials:  # (a restarted worker gets its own trial back)
                if self.stopping or self.tuner.stop.requested or self.tuner.stop.out_of_time():
                    oracle.tuner_ids.discard(tuner_id)
                    return self._reply(trial_module.TrialStatus.STOPPED)
                if not compat.retry_queue(oracle) and len(oracle.trials) >= self.max_trials and oracle.ongoing_trials:
                    # another worker's trial may yet come back for retry
                    return self._reply(trial_module.TrialStatus.IDLE)
            response = self.base.CreateTrial(request, context)
            status = trial_module.Trial.from_proto(response.trial).status
            if status == trial_module.TrialStatus.RUNNING:
                self.seen[response.trial.trial_id] = time.time()
            elif status == trial_module.TrialStatus.STOPPED:
                self.stopping = True
            return response

    def EndTrial(self, request, context):
        with self.lock:
            trial_id = request.trial.trial_id
            if trial_id in self.oracle.end_order or trial_id not in self.oracle.trials:
                # a worker thought dead finished after all, and its trial was retried: counted once
                search_progress.log(f"chief: ignoring a second result for trial {trial_id}")
                self._forget(trial_id)
                return protos.get_service().EndTrialResponse()
            status = trial_module.Trial.from_proto(request.trial).status
            name = self.tuner.objective[0]  # the scores a worker reported (UpdateTrial) are on the chief's copy
            if status == trial_module.TrialStatus.COMPLETED and \
                    not trials_table.is_score(metrics_of(self.oracle.trials[trial_id]).get(name)):
                # The chief serves whoever reaches its port (README, "Scaling out"): a "complete" trial without
                # its score is refused and stays with the worker it was handed to (retried if that one is silent)
                import grpc  # gRPC: only when workers run
                search_progress.log(f"chief: refused a result for trial {trial_id} without {name}")
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"a completed trial must report {name}")
            response = self.base.EndTrial(request, context)
            self.oracle.save()  # Keras Tuner saved before taking the trial off ongoing_trials
            self.seen.pop(trial_id, None)
            trial = self.oracle.trials[trial_id]
            self.tuner.record_trial(number(trial), status_of(trial), metrics_of(trial).get(self.tuner.objective[0]))
            if trials_table.failed_in_a_row([status_of(self.oracle.trials[t]) for t in self.oracle.end_order]):
                self.stopping = True
                failures = trials_table.MAX_CONSECUTIVE_FAILURES
                search_progress.log(f"{self.tuner.family.name}: {failures} trials failed in a row "
                                    f"(last: {self.tuner.trial_rows()[-1]['error']}); stopping the search")
            return response

    def requeue_stale(self):
        """Hand the trials of workers silent for STALE_S to the next worker that asks."""
        with self.lock:
            now = time.time()
            for tuner_id, trial in list(self.oracle.ongoing_trials.items()):
                if now - self.seen.setdefault(trial.trial_id, now) > STALE_S:
                    search_progress.log(f"chief: {tuner_id} silent for {STALE_S} s; trial {trial.trial_id} goes to "
                                "the next worker")
                    del self.oracle.ongoing_trials[tuner_id]
                    self.oracle.tuner_ids.discard(tuner_id)
                    compat.retry_queue(self.oracle).append(trial.trial_id)
                    if hasattr(self.oracle, "forget_attempt"):  # the study oracle: the next attempt starts afresh
                        self.oracle.forget_attempt(trial.trial_id)
                    self.seen.pop(trial.trial_id, None)
                    self.oracle.save()

    def _forget(self, trial_id):
        for tuner_id, trial in list(self.oracle.ongoing_trials.items()):
            if trial.trial_id == trial_id:
                del self.oracle.ongoing_trials[tuner_id]
        self.seen.pop(trial_id, None)
        self.oracle.save()

    def finished(self):
        with self.lock:
            o = self.oracle
            return self.stopping and not o.ongoing_trials and not compat.retry_queue(o) and not o.tuner_ids

    def _reply(self, status):
        trial = trial_module.Trial(self.oracle.get_space(), status=status)
        return protos.get_service().CreateTrialResponse(trial=trial.to_proto())


def serve(tuner, address, start_workers=None):
    """The chief: serve the oracle on address=(ip, port) until every trial is done.

    start_workers(port) -> processes, for --workers on this machine; the chief
    then also stops when they have all exited."""
    import grpc  # gRPC: only when workers run
    ip, port = address
    tuner.save()  # its file's presence is what makes the next run reload the oracle
    servicer = ChiefServicer(tuner, tuner.oracle.max_trials)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    protos.get_service_grpc().add_OracleServicer_to_server(servicer, server)
    try:
        port = server.add_insecure_port(f"{ip}:{port}")
    except RuntimeError:  # gRPC's "failed to bind": a port in use, or not a port number
        port = 0
    if not port:
        raise UserError(f"the chief cannot listen on {ip}:{address[1]}: set KERASTUNER_ORACLE_IP to an address "
                        "of this host and KERASTUNER_ORACLE_PORT to a free port number")
    server.start()
    name = tuner.family.name
    procs = start_workers(port) if start_workers else None
    if procs is None:
        logger.info(f"[{name} chief] serving the search on {ip}:{port}; start workers with KERASTUNER_TUNER_ID=worker0 "
                    f"(worker1, ...) KERASTUNER_ORACLE_IP=<this host> KERASTUNER_ORACLE_PORT={port}")
    try:
        while True:
            time.sleep(0.5)
            servicer.requeue_stale()
            if procs is not None:
                if all(p.poll() is not None for p in procs):
                    break
            elif servicer.finished() or (tuner.stop.requested and not servicer.oracle.ongoing_trials):
                break  # done, or Ctrl-C / SIGTERM once the workers' trials in progress have ended
    finally:
        server.stop(grace=1)
    if procs is not None and not servicer.finished() and not tuner.stop.requested:
        raise UserError(f"{name}: every worker exited (exit codes {[p.returncode for p in procs]}) before the "
                        "search finished; the finished trials are saved: run the same command again to resume")
