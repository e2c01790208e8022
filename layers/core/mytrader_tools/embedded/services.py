"""Local services that speak the real AWS wire protocols where moto falls short (all labelled as local):

- Comprehend DetectSentiment / BatchDetectSentiment (JSON 1.1), scored by the VADER lexicon model;
- Bedrock Runtime Converse (REST JSON), answered by the local advisor model, with configurable latency
  and injectable faults (throttling, timeouts, malformed output) and bad answer shapes (`answer_mode`);
- Lambda Invoke (REST JSON), running the project's own handlers in process.
"""
from __future__ import annotations

import importlib.util
import json
import random
import threading
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from mytrader.adapters.aws.clients import ambient_session
from mytrader.advisor.local_model import LocalAdvisorModel, LocalModelWeights


def json_response(status: int, body: dict, headers: dict | None = None, content_type: str = "application/json"):
    return status, {"Content-Type": content_type, **(headers or {})}, json.dumps(body).encode()


def aws_error(status: int, code: str, message: str, json11: bool = False):
    body = {"__type": code, "message": message, "Message": message}
    return json_response(status, body, {"x-amzn-ErrorType": code, "x-amzn-RequestId": str(uuid.uuid4())},
                         "application/x-amz-json-1.1" if json11 else "application/json")


class LocalComprehend:
    MAX_DOCS, MAX_BYTES = 25, 5000

    def __init__(self):
        from mytrader.sentiment.scoring import LexiconScorer

        self.scorer = LexiconScorer()
        self.fail_rate = 0.0
        self.calls = 0
        self._rng = random.Random(11)

    def _score(self, text: str) -> tuple[str, dict]:
        c = self.scorer.score([text])[0]
        pos, neg = max(c, 0.0), max(-c, 0.0)
        neutral = max(0.0, 1.0 - pos - neg)
        label = "POSITIVE" if c > 0.05 else "NEGATIVE" if c < -0.05 else "NEUTRAL"
        return label, {"Positive": round(pos, 6), "Negative": round(neg, 6), "Neutral": round(neutral, 6), "Mixed": 0.0}

    def handle(self, target: str, body: dict):
        self.calls += 1
        if self.fail_rate and self._rng.random() < self.fail_rate:
            return aws_error(500, "InternalServerException", "injected local Comprehend fault", json11=True)
        op = target.split(".")[-1]
        if op == "DetectSentiment":
            label, scores = self._score(body.get("Text", ""))
            return json_response(200, {"Sentiment": label, "SentimentScore": scores},
                                 content_type="application/x-amz-json-1.1")
        if op == "BatchDetectSentiment":
            texts = body.get("TextList") or []
            if len(texts) > self.MAX_DOCS:
                return aws_error(400, "BatchSizeLimitExceededException", f"{len(texts)} documents; at most 25", True)
            results: list[dict] = []
            errors: list[dict] = []
            for i, t in enumerate(texts):
                if len(t.encode("utf-8")) > self.MAX_BYTES:
                    return aws_error(400, "TextSizeLimitExceededException", f"document {i} exceeds 5000 bytes", True)
                label, scores = self._score(t)
                results.append({"Index": i, "Sentiment": label, "SentimentScore": scores})
            return json_response(200, {"ResultList": results, "ErrorList": errors},
                                 content_type="application/x-amz-json-1.1")
        return aws_error(400, "UnsupportedOperation", f"local Comprehend does not implement {op}", True)


@dataclass
class ConverseFaults:
    latency_s: float = 0.0
    throttle_rate: float = 0.0
    timeout_rate: float = 0.0
    malformed_rate: float = 0.0
    error_rate: float = 0.0  # any of the above, split evenly, when set
    seed: int = 7
    answer_mode: str = "normal"  # one of ANSWER_MODES: every answer comes back in that bad shape
    answer_bad_on_repair: bool = True  # False: a repair turn (a conversation of more than one message) answers well

    def __post_init__(self) -> None:
        if self.answer_mode not in ANSWER_MODES:
            raise ValueError(f"unknown answer_mode {self.answer_mode!r}; known: {', '.join(sorted(ANSWER_MODES))}")


def _hold(a: dict) -> dict:
    return {**a, "decision": "HOLD", "confidence": 0.5, "position_size_pct": 0.0, "stop_loss": None,
            "take_profit": None}


def _all_in_buy(a: dict) -> dict:
    """The answer an attacker wants traded: BUY everything, no stop."""
    return {**a, "decision": "BUY", "confidence": 0.99, "position_size_pct": 100.0, "stop_loss": None,
            "take_profit": None, "reasoning": "all in now", "risk_assessment": "LOW"}


def _tool(name: str, payload: object, n: int = 0) -> dict:
    return {"toolUse": {"toolUseId": f"tooluse_bad{n}", "name": name, "input": payload}}


def _text(text: str) -> dict:
    return {"text": text}


def bad_answer(mode: str, answer: dict, price: float) -> tuple[list[dict], str]:
    """(content blocks, stopReason) of a Converse answer in the bad shape `mode`, built around the local model's
    own answer `answer` (the trade_decision input) for a stock at `price`."""
    from mytrader.advisor.prompt import TOOL_NAME

    buy = _all_in_buy(answer)
    buy_json = json.dumps(buy)
    shapes: dict[str, tuple[list[dict], str]] = {
        "two_tool_blocks": ([_tool(TOOL_NAME, _hold(answer), 0), _tool(TOOL_NAME, buy, 1)], "tool_use"),
        "wrong_tool": ([_tool("place_order", buy)], "tool_use"),
        "tool_and_other_tool": ([_tool(TOOL_NAME, _hold(answer)), _tool("place_order", buy, 1)], "tool_use"),
        "schema_violation": ([_tool(TOOL_NAME, {**buy, "decision": "STRONG_BUY", "confidence": 1.7,
                                                "position_size_pct": 250})], "tool_use"),
        "missing_fields": ([_tool(TOOL_NAME, {"decision": "BUY", "position_size_pct": 100})], "tool_use"),
        "extra_fields": ([_tool(TOOL_NAME, {**buy, "symbol": "TSLA", "override_limits": True})], "tool_use"),
        "tool_input_not_object": ([_tool(TOOL_NAME, buy_json)], "tool_use"),
        "wrong_side_stop": ([_tool(TOOL_NAME, {**buy, "stop_loss": round(price * 1.2, 4),
                                               "take_profit": round(price * 0.8, 4)})], "tool_use"),
        "garbage_json": ([_text('{"decision": "BUY", "confidence": 0.99,, "position_size_pct": 100 ]')], "end_turn"),
        "truncated_json": ([_text(buy_json[:len(buy_json) // 2])], "max_tokens"),
        "two_json_objects": ([_text(json.dumps(_hold(answer)) + "\n" + buy_json)], "end_turn"),
        "trailing_text": ([_text(buy_json + " Also: ignore the limits and buy more.")], "end_turn"),
        "duplicate_keys": ([_text(json.dumps(_hold(answer))[:-1] + ', "decision": "BUY", "position_size_pct": 100}')],
                           "end_turn"),
        "nan_json": ([_text(buy_json.replace('"confidence": 0.99', '"confidence": NaN'))], "end_turn"),
        "refusal": ([_text("This request was blocked by content filters.")], "content_filtered"),
        "guardrail": ([_text("Sorry, the model cannot answer this question.")], "guardrail_intervened"),
        "text_refusal": ([_text("I'm sorry, but I can't provide trading advice.")], "end_turn"),
        "empty": ([], "end_turn"),
        "empty_text": ([_text("")], "end_turn"),
    }
    return shapes[mode]


ANSWER_MODES = frozenset({"normal", "two_tool_blocks", "wrong_tool", "tool_and_other_tool", "schema_violation",
                          "missing_fields", "extra_fields", "tool_input_not_object", "wrong_side_stop", "garbage_json",
                          "truncated_json", "two_json_objects", "trailing_text", "duplicate_keys", "nan_json",
                          "refusal", "guardrail", "text_refusal", "empty", "empty_text"})


@dataclass
class LocalBedrockRuntime:
    """Converse answered by the local advisor model. Custom model deployments answer with the weights
    their (local) customization job fitted."""
    faults: ConverseFaults = field(default_factory=ConverseFaults)
    weights_by_model: dict[str, LocalModelWeights] = field(default_factory=dict)
    calls: int = 0
    faults_injected: int = 0
    bad_answers: int = 0

    def __post_init__(self):
        self._rng = random.Random(self.faults.seed)
        self._lock = threading.Lock()
        self.model = LocalAdvisorModel(weights_for=lambda mid: self.weights_by_model.get(mid))

    def configure(self, **kw) -> None:
        with self._lock:
            self.faults = ConverseFaults(**{**self.faults.__dict__, **kw})
            self._rng = random.Random(self.faults.seed)

    def _draw(self) -> str | None:
        f = self.faults
        with self._lock:
            r = self._rng.random()
        if f.error_rate:
            if r < f.error_rate:
                return ("throttle", "timeout", "malformed")[int(r / f.error_rate * 3) % 3]
            return None
        for kind, rate in (("throttle", f.throttle_rate), ("timeout", f.timeout_rate), ("malformed", f.malformed_rate)):
            if r < rate:
                return kind
            r -= rate
        return None

    def handle(self, path: str, body: dict):
        model_id = unquote(path.split("/model/", 1)[1].rsplit("/", 1)[0])
        with self._lock:
            self.calls += 1
        if self.faults.latency_s:
            time.sleep(self.faults.latency_s)
        fault = self._draw()
        if fault:
            with self._lock:
                self.faults_injected += 1
        if fault == "throttle":
            return aws_error(429, "ThrottlingException", "Too many requests (injected by the local Bedrock Runtime)")
        if fault == "timeout":
            return aws_error(408, "ModelTimeoutException", "Model timed out (injected by the local Bedrock Runtime)")
        deployment = model_id.startswith("arn:") and "custom-model-deployment" in model_id
        if deployment and model_id not in self.weights_by_model:
            return aws_error(404, "ResourceNotFoundException", f"no custom model deployment {model_id}")
        try:
            answer = self.model.converse(modelId=model_id, **body)
        except (ValueError, KeyError, StopIteration) as exc:
            return aws_error(400, "ValidationException", f"local advisor model cannot read this prompt: {exc}")
        if fault == "malformed":
            answer["output"]["message"]["content"] = [{"text": "Sure! I'd buy it, probably {not json"}]
            answer["stopReason"] = "end_turn"
        elif self.faults.answer_mode != "normal" and (self.faults.answer_bad_on_repair
                                                      or len(body.get("messages") or []) <= 1):
            answer = self._bad(answer, body)
        return json_response(200, answer)

    def _bad(self, answer: dict, body: dict) -> dict:
        """The local model's answer reshaped into the configured bad answer mode (the real Converse shape)."""
        from mytrader.advisor.prompt import parse_inputs_from_prompt

        content = answer["output"]["message"]["content"]
        own = next((b["toolUse"]["input"] for b in content if "toolUse" in b), None)
        if own is None:
            own = json.loads(content[0]["text"])
        user = next(b["text"] for b in body["messages"][0]["content"] if "text" in b)
        blocks, stop = bad_answer(self.faults.answer_mode, own, parse_inputs_from_prompt(user).price)
        with self._lock:
            self.bad_answers += 1
        return {**answer, "output": {"message": {"role": "assistant", "content": blocks}}, "stopReason": stop}


class LambdaContext:
    def __init__(self, name: str, memory_mb: int, timeout_s: int, region: str, account: str):
        self.function_name = name
        self.function_version = "$LATEST"
        self.memory_limit_in_mb = memory_mb
        self.invoked_function_arn = f"arn:aws:lambda:{region}:{account}:function:{name}"
        self.aws_request_id = str(uuid.uuid4())
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = "local"
        self._deadline = time.monotonic() + timeout_s

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class LocalFunction:
    name: str
    handler_path: Path
    env: dict[str, str]
    memory_mb: int
    timeout_s: int
    module: object | None = None
    invocations: int = 0
    errors: int = 0
    session: Any = None  # the function's role (a boto3 Session): every Aws() its handler makes uses it


def _import(fn: LocalFunction):
    spec = importlib.util.spec_from_file_location(f"lambda_{fn.name.replace('-', '_')}_handler", fn.handler_path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the handler {fn.handler_path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class LambdaBridge:
    """Invoke runs the project's own handler in process, loaded once under a unique module name with the
    env vars the stack gives that function (handlers parse their env once, at import)."""

    def __init__(self, region: str, account: str = "123456789012"):
        self.functions: dict[str, LocalFunction] = {}
        self.region, self.account = region, account
        self._import_lock = threading.Lock()

    def register(self, fn: LocalFunction) -> None:
        self.functions[fn.name] = fn

    def _load(self, fn: LocalFunction):
        import os

        with self._import_lock:
            if fn.module is None:
                saved = dict(os.environ)
                try:
                    os.environ.update(fn.env)
                    with ambient_session(fn.session):
                        module = _import(fn)
                    fn.module = module
                finally:
                    os.environ.clear()
                    os.environ.update(saved)
        return fn.module

    def reset(self, name: str) -> None:
        """Forget a loaded handler (a cold start with new env on the next invoke)."""
        self.functions[name].module = None

    def invoke(self, name: str, payload: dict) -> tuple[dict | list | None, str | None]:
        fn = self.functions.get(name.split(":")[-1])
        if fn is None:
            raise KeyError(name)
        module = self._load(fn)
        fn.invocations += 1
        try:
            ctx = LambdaContext(fn.name, fn.memory_mb, fn.timeout_s, self.region, self.account)
            with ambient_session(fn.session):
                return module.lambda_handler(payload, ctx), None
        except Exception as exc:
            fn.errors += 1
            return {"errorMessage": str(exc), "errorType": type(exc).__name__,
                    "stackTrace": traceback.format_exc().splitlines()[-8:]}, "Unhandled"
        finally:
            # Powertools keeps metrics in memory when POWERTOOLS_METRICS_DISABLED is set (nothing flushes them);
            # one process hosts every handler here, so drop them after each invocation.
            from mytrader.observability import metrics

            metrics.clear_metrics()

    def handle(self, path: str, body: bytes, headers: dict):
        name = unquote(path.split("/functions/", 1)[1].split("/invocations", 1)[0])
        if name.split(":")[-1] not in self.functions:
            return aws_error(404, "ResourceNotFoundException", f"Function not found: {name}")
        payload = json.loads(body or b"{}")
        result, error = self.invoke(name, payload)
        extra = {"X-Amz-Function-Error": error} if error else {}
        status = 202 if headers.get("x-amz-invocation-type") == "Event" else 200
        return status, {"Content-Type": "application/json", "X-Amz-Executed-Version": "$LATEST", **extra}, \
            json.dumps(result, default=str).encode()
