"""A user's mistake is one line on stderr saying what to do, and exit 2; `--debug` shows the traceback instead.

`CliGroup` is the root command's class: it turns usage errors, `UserError`, the library's `InputError`, bad
market data, file-system errors and the AWS SDK's configuration errors (no region, no credentials, an endpoint
that does not answer, a refused call) into that line. Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import os
from typing import Any

import typer
from typer._click.core import Context  # typer 0.29 carries its own click
from typer._click.exceptions import ClickException, UsageError
from typer.core import TyperGroup

from mytrader.app.project_config import InputError
from mytrader.errors import DataQualityError

EXIT_USER = 2
SHORT = 120
DEBUG_ENV = "MYTRADER_DEBUG"
SET_REGION = "set AWS_REGION (e.g. export AWS_REGION=us-east-1) or pass --region"
SET_CREDENTIALS = ("set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (aws configure, aws sso login); "
                   "for the embedded AWS pass --endpoint-url http://127.0.0.1:PORT")
_NOT_FOUND = ("ResourceNotFoundException", "ParameterNotFound", "QueueDoesNotExist", "StateMachineDoesNotExist",
              "AWS.SimpleQueueService.NonExistentQueue", "NoSuchBucket")
_AUTH = ("UnrecognizedClientException", "InvalidClientTokenId", "InvalidSignatureException", "ExpiredToken",
         "ExpiredTokenException", "AccessDenied", "AccessDeniedException", "SignatureDoesNotMatch")


class UserError(Exception):
    """A mistake the user can fix. The message says what to do, in one line."""


def user_message(exc: BaseException) -> str | None:
    """The one line for a user's mistake, or None for anything else (a bug: it keeps its traceback)."""
    from mytrader.strategies import StrategyError

    if isinstance(exc, UserError | InputError | StrategyError):
        return str(exc)
    if isinstance(exc, DataQualityError):
        return f"bad market data: {exc} (fix the file or leave it out)"
    aws = aws_message(exc)
    if aws is not None:
        return aws
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    return None


def aws_message(exc: BaseException) -> str | None:
    from botocore import exceptions as bx
    from botocore.parsers import ResponseParserError

    if isinstance(exc, bx.NoRegionError):
        return f"no AWS region configured: {SET_REGION}"
    if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
        return f"no AWS credentials found: {SET_CREDENTIALS}"
    if isinstance(exc, bx.ProfileNotFound):
        return f"{exc}: set AWS_PROFILE to a profile of ~/.aws/config, or unset it"
    if isinstance(exc, bx.TokenRetrievalError | bx.SSOTokenLoadError | bx.UnauthorizedSSOTokenError):
        return f"{exc}: run aws sso login"
    if isinstance(exc, bx.EndpointConnectionError | bx.ConnectTimeoutError):
        url = exc.kwargs.get("endpoint_url", "the AWS endpoint")
        return (f"cannot reach {url}: check --endpoint-url / AWS_ENDPOINT_URL (is the embedded AWS running?) "
                "and your network")
    if isinstance(exc, bx.ClientError):
        error = exc.response.get("Error", {})
        code, text = error.get("Code", "?"), error.get("Message", "")
        hint = ("check the credentials and their permissions" if code in _AUTH else
                "is the stack deployed there, with this --prefix and region?" if code in _NOT_FOUND else
                "see the AWS message")
        return f"AWS refused {exc.operation_name}: {code}: {_short(text)} ({hint})"
    if isinstance(exc, ResponseParserError):  # botocore.parsers', not a BotoCoreError
        url = os.environ.get("AWS_ENDPOINT_URL", "the endpoint")  # the command's own is restored by now
        return (f"{url} did not answer as AWS does ({_short(str(exc))}): check --endpoint-url / AWS_ENDPOINT_URL "
                "(is it the embedded AWS or an AWS endpoint?)")
    if isinstance(exc, bx.BotoCoreError):
        return f"AWS SDK error: {_short(str(exc))} (check --endpoint-url, --region and the credentials)"
    return None


def _short(text: str, limit: int = SHORT) -> str:
    """One line of at most `limit` characters (a server's whole HTML page is not a message)."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[:limit - 1] + "…"


def debugging(ctx: Context) -> bool:
    return bool(ctx.find_root().params.get("debug")) or os.environ.get(DEBUG_ENV, "") not in ("", "0", "false")


def fail(message: str, code: int = EXIT_USER) -> typer.Exit:
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    return typer.Exit(code)


class CliGroup(TyperGroup):
    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except UsageError as exc:
            raise _usage(ctx, exc) from None

    def invoke(self, ctx: Context) -> Any:
        try:
            return super().invoke(ctx)
        except UsageError as exc:
            raise _usage(ctx, exc) from None
        except (typer.Exit, typer.Abort, ClickException):
            raise
        except Exception as exc:
            message = user_message(exc)
            if message is None or debugging(ctx):
                raise
            raise fail(message) from None


def _usage(ctx: Context, exc: UsageError) -> Exception:
    """A usage error as one line (the help text itself, asked for by no arguments, is left to click)."""
    if type(exc).__name__ == "NoArgsIsHelpError" or debugging(ctx):
        return exc
    where = exc.ctx.command_path if exc.ctx is not None else ctx.command_path
    return fail(f"{exc.format_message()} (see {where} --help)", exc.exit_code)
