"""The scorecard artifact: validation errors name the problem; evaluation, explanation and the score mapping."""

import copy
import json

import pytest

from handlers.model import ModelError, load_model, model_score, parse_model, risk_of_score

GOOD = {
    "format": "fraud-pipeline-scorecard", "format_version": 2, "version": "test-1", "intercept": -4.0,
    "features": [
        {"name": "amount", "edges": [100.0, 1000.0], "weights": [-0.5, 0.5, 2.0], "reference": -0.3},
        {"name": "card_hour_share_30d", "edges": [0.05], "weights": [1.0, -0.2], "reference": -0.1},
    ],
    "interactions": [
        {"names": ["hour", "card_hour_share_30d"], "edges": [[5.5], [0.05]],
         "weights": [[3.0, 0.0], [0.0, 0.0]], "reference": 0.1},
    ],
    "thresholds": {"review": 0.3, "block": 0.8},
    "card": {"reproduce": "..."},
}


def broken(path: str, value) -> dict:
    data = copy.deepcopy(GOOD)
    target = data
    keys = path.split(".")
    for k in keys[:-1]:
        target = target[int(k)] if k.isdigit() else target[k]
    last = keys[-1]
    if value is KeyError:
        del target[int(last) if last.isdigit() else last]
    else:
        target[int(last) if last.isdigit() else last] = value
    return data


@pytest.mark.parametrize("path, value, message", [
    ("format", "other", "format must be"),
    ("format_version", 3, "format must be"),
    ("format_version", True, "format must be"),
    ("version", "", "version must be"),
    ("intercept", "x", "intercept must be a finite number"),
    ("intercept", float("nan"), "intercept must be a finite number"),
    ("features", [], "features must be a non-empty list"),
    ("features.0.name", "nope", "features[0].name must be one of the computed features"),
    ("features.1.name", "amount", "features[1].name 'amount' appears twice"),
    ("features.0.edges", [1000.0, 100.0], "features[0].edges must be strictly increasing"),
    ("features.0.weights", [1.0], "features[0] needs edges (a list) and one more weight than edges"),
    ("features.0.weights", [1.0, "a", 2.0], "features[0].weights must be a finite number"),
    ("interactions.0.names", ["hour", "hour"], "interactions[0].names must be two different computed features"),
    ("interactions.0.names", ["hour", "bogus"], "interactions[0].names must be two different computed features"),
    ("interactions.0.edges", [[5.5]], "interactions[0].edges must be two lists"),
    ("interactions.0.weights", [[3.0, 0.0]], "interactions[0].weights must be 2 rows of 2 weights"),
    ("interactions", {}, "interactions must be a list"),
    ("thresholds", KeyError, "thresholds must be an object"),
    ("thresholds.review", 0.9, "thresholds must satisfy 0 < review < block < 1"),
    ("thresholds.block", 1.0, "thresholds must satisfy 0 < review < block < 1"),
])
def test_validation_errors_name_the_problem(path, value, message):
    with pytest.raises(ModelError) as err:
        parse_model(broken(path, value))
    assert message in str(err.value)


def test_not_json_and_not_an_object():
    with pytest.raises(ModelError, match="not valid JSON"):
        load_model(b"{")
    with pytest.raises(ModelError, match="must be a JSON object"):
        load_model("[]")


def test_version_1_has_no_interactions():
    data = broken("format_version", 1)
    with pytest.raises(ModelError, match="interactions need format_version 2"):
        parse_model(data)
    del data["interactions"]
    assert parse_model(data).interactions == ()


def test_evaluate_sums_bins_and_cells_and_explains_the_largest_moves():
    model = load_model(json.dumps(GOOD))
    night = {"amount": 1500.0, "hour": 3, "card_hour_share_30d": 0.0}
    risk, top = model.evaluate(night)
    logit = -4.0 + 2.0 + 1.0 + 3.0
    assert risk == pytest.approx(1 / (1 + 2.718281828459045 ** -logit))
    assert model.risk(night) == risk
    # the pair's move (3.0 - 0.1) is shared by hour and card_hour_share_30d; amount moved 2.3
    assert top == ("card_hour_share_30d", "amount")
    day = {"amount": 50.0, "hour": 14, "card_hour_share_30d": 0.4}
    assert model.risk(day) < risk and model.explain(day) == ()
    assert model.risk({}) == model.risk({"amount": 0.0, "hour": 0.0, "card_hour_share_30d": 0.0})


def test_round_trip_through_to_json():
    model = load_model(json.dumps(GOOD))
    again = parse_model(json.loads(json.dumps(model.to_json())))
    assert again == model and again.feature_names == ("amount", "card_hour_share_30d", "hour")


def test_score_mapping_lands_thresholds_on_the_rules_scores_and_inverts():
    model = load_model(json.dumps(GOOD))
    t = model.thresholds
    assert model_score(t.review, t, 40, 70) == 40 and model_score(t.block, t, 40, 70) == 70
    assert model_score(0.0, t, 40, 70) == 0 and model_score(1.0, t, 40, 70) == 100
    scores = [model_score(r / 100, t, 40, 70) for r in range(101)]
    assert scores == sorted(scores)
    for s in (0, 20, 40, 55, 70, 90):
        assert model_score(risk_of_score(s, t, 40, 70), t, 40, 70) in (s - 1, s)


def test_shipped_default_model_is_valid():
    from fraud_pipeline.backtest.__main__ import default_model_path

    model = load_model(default_model_path().read_bytes())
    assert model.terms and model.card.get("reproduce")
