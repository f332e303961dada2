"""The errors fanflow's commands report, each with the exit status `fanflow.cli.main` gives it:
in one module, below every other, so that the library and the commands raise them without
importing each other. (An invalid request is lambda_fns.request_model.RequestError: exit 2.)"""

from __future__ import annotations


class UsageError(ValueError):
    """A command-line option the command cannot use; exit status 2."""


class RequestFailed(RuntimeError):
    """The request could not start or did not finish; the message says why. Exit status 1."""


class RequestNotFound(RequestFailed):
    """No counter row and no PreProcess execution has this requestId."""


class DeploymentError(RequestFailed):
    """A target cannot be used (not running, no credentials, stack not deployed); the
    message says why and what to do."""


class NoEndpoint(DeploymentError):
    """No `fanflow up` endpoint runs, and the command needs one (it reads state that only a
    running endpoint keeps)."""


class Interrupted(Exception):
    """Ctrl-C during a run; the message says what became of the request. Exit status 130."""
