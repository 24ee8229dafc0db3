"""Unit conversion for length, mass, volume, speed, time, data, area, energy and temperature."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from agent.tools.base import Recognised, Rule, Tool, ToolContext, ToolError, accepts, object_schema
from agent.tools.calculator import format_number
from agent.tools.signals import NUMERAL, with_number

# unit -> (dimension, factor to the dimension's base unit)
_FACTORS: dict[str, tuple[str, float]] = {
    "m": ("length", 1), "km": ("length", 1000), "cm": ("length", 0.01), "mm": ("length", 0.001),
    "mi": ("length", 1609.344), "yd": ("length", 0.9144), "ft": ("length", 0.3048), "in": ("length", 0.0254),
    "nmi": ("length", 1852),
    "kg": ("mass", 1), "g": ("mass", 0.001), "mg": ("mass", 1e-6), "t": ("mass", 1000),
    "lb": ("mass", 0.45359237), "oz": ("mass", 0.028349523125), "st": ("mass", 6.35029318),
    "l": ("volume", 1), "ml": ("volume", 0.001), "gal": ("volume", 3.785411784), "qt": ("volume", 0.946352946),
    "pt": ("volume", 0.473176473), "cup": ("volume", 0.2365882365), "floz": ("volume", 0.0295735295625),
    "m3": ("volume", 1000),
    "m/s": ("speed", 1), "km/h": ("speed", 1 / 3.6), "mph": ("speed", 0.44704), "kn": ("speed", 0.514444),
    "s": ("time", 1), "min": ("time", 60), "h": ("time", 3600), "day": ("time", 86400), "week": ("time", 604800),
    "b": ("data", 1), "kb": ("data", 1000), "mb": ("data", 1e6), "gb": ("data", 1e9), "tb": ("data", 1e12),
    "kib": ("data", 1024), "mib": ("data", 1024**2), "gib": ("data", 1024**3),
    "m2": ("area", 1), "km2": ("area", 1e6), "ha": ("area", 1e4), "acre": ("area", 4046.8564224),
    "ft2": ("area", 0.09290304),
    "j": ("energy", 1), "kj": ("energy", 1000), "cal": ("energy", 4.184), "kcal": ("energy", 4184),
    "kwh": ("energy", 3.6e6),
}
_TEMPERATURES = {"c", "f", "k"}
_NAMES = {
    "meter": "m", "metre": "m", "meters": "m", "metres": "m", "kilometer": "km", "kilometers": "km",
    "kilometres": "km", "kilometre": "km", "centimeter": "cm", "centimeters": "cm", "centimetre": "cm",
    "centimetres": "cm", "millimetre": "mm", "millimetres": "mm", "millimeter": "mm",
    "millimeters": "mm", "mile": "mi", "miles": "mi", "yard": "yd", "yards": "yd", "foot": "ft", "feet": "ft",
    "inch": "in", "inches": "in", "kilogram": "kg", "kilograms": "kg", "kilo": "kg", "kilos": "kg", "gram": "g",
    "grams": "g", "pound": "lb", "pounds": "lb", "lbs": "lb", "ounce": "oz", "ounces": "oz", "stone": "st",
    "ton": "t", "tonne": "t", "tonnes": "t", "liter": "l", "litre": "l", "liters": "l", "litres": "l",
    "milliliter": "ml", "milliliters": "ml", "gallon": "gal", "gallons": "gal", "cups": "cup", "quart": "qt",
    "quarts": "qt", "pint": "pt", "pints": "pt", "kph": "km/h", "kmh": "km/h", "knots": "kn", "knot": "kn",
    "second": "s", "seconds": "s", "minute": "min", "minutes": "min", "hour": "h", "hours": "h", "days": "day",
    "weeks": "week", "celsius": "c", "fahrenheit": "f", "kelvin": "k", "°c": "c", "°f": "f", "degc": "c",
    "degf": "f", "calories": "kcal", "joules": "j", "joule": "j", "acres": "acre", "hectare": "ha",
    "hectares": "ha", "bytes": "b", "byte": "b", "kilobytes": "kb", "megabytes": "mb", "gigabytes": "gb",
    "terabytes": "tb", "milesperhour": "mph", "kilometersperhour": "km/h", "kilometresperhour": "km/h",
    "meterspersecond": "m/s", "metrespersecond": "m/s",
}
_DEGREES = re.compile(r"^degrees? (?=celsius|fahrenheit|kelvin|[cfk]$)")


def canonical(unit: str) -> str:
    """The table's name for a unit as people and models write it ("Degrees_Fahrenheit", "miles per hour")."""
    key = _DEGREES.sub("", unit.strip().lower().replace("_", " "))
    key = key.replace(" ", "").replace("²", "2").replace("³", "3")
    key = _NAMES.get(key, key)
    if key in _FACTORS or key in _TEMPERATURES:
        return key
    raise ToolError(f"unknown unit {unit!r}")


def convert(value: float, source: str, target: str) -> float:
    source, target = canonical(source), canonical(target)
    if source in _TEMPERATURES or target in _TEMPERATURES:
        if not (source in _TEMPERATURES and target in _TEMPERATURES):
            raise ToolError(f"cannot convert {source} to {target}")
        kelvin = {"c": value + 273.15, "f": (value - 32) * 5 / 9 + 273.15, "k": value}[source]
        return {"c": kelvin - 273.15, "f": (kelvin - 273.15) * 9 / 5 + 32, "k": kelvin}[target]
    (source_dimension, source_factor), (target_dimension, target_factor) = _FACTORS[source], _FACTORS[target]
    if source_dimension != target_dimension:
        raise ToolError(f"cannot convert {source_dimension} ({source}) to {target_dimension} ({target})")
    return value * source_factor / target_factor


def _run(arguments: dict[str, Any], _: ToolContext) -> str:
    result = convert(float(arguments["value"]), arguments["from_unit"], arguments["to_unit"])
    return f"{format_number(round(result, 6))} {arguments['to_unit']}"


_CONVERSION = re.compile(
    r"(" + NUMERAL + r")\s*([a-zA-Z°/²³]+(?: [a-zA-Z]+)?)\s+(?:to|in|into|in to|as)\s+([a-zA-Z°/²³]+)", re.I)
_HOW_MANY = re.compile(r"how many ([a-zA-Z°/²³]+) (?:is|are|in|are in|are there in|make) (" + NUMERAL + r"|an?)\s*"
                       r"([a-zA-Z°/²³]+)", re.I)


# "…, and how many seconds is that?", "… to miles and to feet": the same amount in another unit.
_ANOTHER_TARGET = re.compile(r",?\s*(?:and|or)\s+(?:how many\s+|in\s+|into\s+|to\s+)?([a-zA-Z°/²³]+)", re.I)


def _recognise(text: str) -> Recognised | None:
    """"5 km to miles", "how many grams are in a pound": an amount and two units the converter knows, and any
    further unit asked for the same amount."""
    for pattern, (amount, source, target) in ((_CONVERSION, (1, 2, 3)), (_HOW_MANY, (2, 3, 1))):
        if (match := pattern.search(text)) and accepts(canonical, match[source]) and accepts(canonical, match[target]):
            said = match[amount].replace(",", "")
            value = 1.0 if said.lower() in ("a", "an") else float(said)
            targets, end = [match[target]], match.end()
            while (more := _ANOTHER_TARGET.match(text, end)) and accepts(canonical, more[1]):
                targets, end = [*targets, more[1]], more.end()
            return Recognised("asks for a unit conversion", tuple(
                {"value": value, "from_unit": match[source], "to_unit": unit} for unit in targets), (match.start(), end))
    return None


def _spoken(names: Iterable[str]) -> str:
    """The names a request may say, as a regex alternation, longest first."""
    spoken = {re.escape(name) for name in names if name.isalpha() and len(name) > 2}
    return "|".join(sorted(spoken, key=len, reverse=True))


_SPOKEN_UNITS = _spoken(_NAMES)
# "How many minutes are there in a week": the number is the "a" (and "week", "day" are the table's own names).
_ANY_UNIT = _spoken([*_NAMES, *_FACTORS])
_ONE_UNIT = rf"\bhow many (?:{_ANY_UNIT})\b.{{0,30}}\b(?:in|per) an? (?:{_ANY_UNIT})\b"
# "What's that in pounds?": the number is in the conversation.
_THAT_IN_UNIT = rf"\b(?:that|it|this|those)\b.{{0,20}}\b(?:in|into|to) (?:{_SPOKEN_UNITS})\b"

unit_converter = Tool(
    name="convert_units",
    description="Convert a value between units (length, mass, volume, speed, time, data, area, energy, temperature).",
    parameters=object_schema({"value": {"type": "number"}, "from_unit": {"type": "string"},
                              "to_unit": {"type": "string"}}, ["value", "from_unit", "to_unit"]),
    run=_run,
    signals=with_number(rf"\b(?:{_SPOKEN_UNITS})\b|\d\s*(?:km|kg|cm|mm|mi|lbs?|oz|ft|ml|mph|°[cf]?)\b",
                        also=f"{_ONE_UNIT}|{_THAT_IN_UNIT}"),
    rule=Rule(_recognise, "quantity", rank=10),
    answers_questions=True,
    say=lambda arguments, result: f"{format_number(float(arguments['value']))} {arguments['from_unit']} is {result}",
)
