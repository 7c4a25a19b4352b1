"""One reconciler frame for every kind the operator serves.

Each kind used to rebuild the same frame (a cache of raw bodies, a lock per key, key
extraction, a catch-and-log wrapper, desired status -> compare -> patch), and the copies
drifted (issue 9). The frame holds it once:

- `store`: a typed `Store` per kind, holding parsed models (`Observed`), fed by the watch and
  by the answers to our own writes; other kinds read it through a `View`.
- `controller`: `Controller`, the loop (lock per key, one `Backoff` for every failure, timers
  for the next deadline), `Outcome` and `Pass`, and the `Tools` every controller is given.
- `status`: `StatusWriter`, which writes a status only when it semantically changed.
- `retry`: `Backoff`, the one retry policy.

Controllers never import each other: `main` builds the graph and hands each controller its
store, the views it reads and the callbacks it calls.

**Adding a kind** (say `Schedule`): write one module, `schedules.py`, holding its pure part
(`desired_status(observed, facts) -> dict`, or a `decide()` like `jobs.decide`) and
`class ScheduleController(Controller[Schedule])` with `kind = "schedule"`,
`resource = SCHEDULES` and `async def reconcile_once(self, observed) -> Pass` that gathers the
facts (from `self.client` or the views it was given), calls the pure part, and returns
`Pass(wake_at=...)` after `await self.write_status(observed, desired)`. Then list it in
`main.KINDS` and build it in `main.build_graph` with the views it reads; `main` subscribes it
to its kind's watch. Parsing, locking, retrying, timers and status comparison come with the
frame. A kind that must react when objects of another kind change follows that kind's view
(`View.follow(callback)`, e.g. `self.soon(owner_key)`) instead of asking main for a new route:
`schedules.ScheduleController` follows the jobs it owns and the runbooks it reads.
"""

from .controller import Controller, Outcome, Pass, Tools
from .retry import Backoff
from .status import StatusWriter, differs
from .store import Key, Model, Observed, Store, View

__all__ = ["Backoff", "Controller", "Key", "Model", "Observed", "Outcome", "Pass", "StatusWriter", "Store", "Tools",
           "View", "differs"]
