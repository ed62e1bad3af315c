#!/usr/bin/env python3
"""Writes the tablet layouts of this folder (run from anywhere: python3 generate.py).

- faderbridge-8ch.json: an Open Stage Control session.
- faderbridge-8ch.tosc: a TouchOSC layout (zlib-wrapped XML, as TouchOSC stores it).

Both bind 8 strips by position (/ch/1 .. /ch/8: fader_db, mute, pan, meters) and the master
fader to faderbridge's native OSC address space, renew /subscribe and /meters/subscribe every
8 s, and send /PATH/touch 1|0 while a fader is held. tests/tablet_layouts.rs checks every
address they bind against the demo session's parameter tree.
"""
import json
import os
import uuid
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
STRIPS = 8
# The console fader law (0.75 = 0 dB, 0.5 = -10, 0.25 = -30, 0.0625 = -60).
FADER_RANGE = {"min": -90, "6.25%": -60, "25%": -30, "50%": -10, "75%": 0, "max": 10}
RENEW = "setInterval(()=>{send('/subscribe', 10); send('/meters/subscribe', 10)}, 8000); send('/subscribe', 10); send('/meters/subscribe', 10)"


def osc_session():
    widgets = []
    for i in range(1, STRIPS + 1):
        x = (i - 1) * 110
        widgets += [
            {"type": "meter", "id": f"meter_{i}", "label": False, "left": x, "top": 0,
             "width": 20, "height": 400, "address": f"/meters/ch/{i}",
             "range": {"min": -60, "max": 0}, "interaction": False},
            {"type": "fader", "id": f"fader_{i}", "label": f"ch {i}", "left": x + 25, "top": 0,
             "width": 80, "height": 400, "address": f"/ch/{i}/fader_db",
             "touchAddress": f"/ch/{i}/fader_db/touch", "range": FADER_RANGE,
             "value": 0, "default": 0, "doubleTap": True},
            {"type": "button", "id": f"mute_{i}", "label": "mute", "mode": "toggle",
             "left": x, "top": 410, "width": 105, "height": 40,
             "address": f"/ch/{i}/mute", "on": 1, "off": 0},
            {"type": "knob", "id": f"pan_{i}", "label": "pan", "left": x + 20, "top": 460,
             "width": 65, "height": 65, "address": f"/ch/{i}/pan",
             "range": {"min": -1, "max": 1}, "value": 0, "default": 0, "doubleTap": True},
        ]
    x = STRIPS * 110 + 20
    widgets += [
        {"type": "meter", "id": "meter_master", "label": False, "left": x, "top": 0,
         "width": 20, "height": 400, "address": "/meters/master",
         "range": {"min": -60, "max": 0}, "interaction": False},
        {"type": "fader", "id": "fader_master", "label": "master", "left": x + 25, "top": 0,
         "width": 80, "height": 400, "address": "/master/fader_db",
         "touchAddress": "/master/fader_db/touch", "range": FADER_RANGE,
         "value": 0, "default": 0, "doubleTap": True},
    ]
    return {
        "createdWith": "Open Stage Control",
        "version": "1.26.0",
        "type": "session",
        "content": {
            "type": "root", "id": "root", "label": "faderbridge",
            "onCreate": RENEW,
            "widgets": widgets, "tabs": [],
        },
    }


def cdata(s):
    return f"<![CDATA[{s}]]>"


def prop(kind, key, value):
    if kind == "r":
        x, y, w, h = value
        v = f"<x>{x}</x><y>{y}</y><w>{w}</w><h>{h}</h>"
    elif kind == "s":
        v = cdata(value)
    else:
        v = str(value)
    return f"<property type='{kind}'><key>{cdata(key)}</key><value>{v}</value></property>"


def value(key, default):
    return (f"<value><key>{cdata(key)}</key><locked>0</locked><lockedDefaultCurrent>0"
            f"</lockedDefaultCurrent><default>{cdata(default)}</default><defaultPull>0"
            f"</defaultPull></value>")


def osc_msg(path, var, conversion, lo, hi, send=True, receive=True):
    trig = f"<triggers><trigger><var>{cdata(var)}</var><condition>ANY</condition></trigger></triggers>"
    return (f"<osc><enabled>1</enabled><send>{int(send)}</send><receive>{int(receive)}</receive>"
            f"<feedback>0</feedback><connections>00001</connections>{trig}"
            f"<path><partial><type>CONSTANT</type><conversion>STRING</conversion>"
            f"<value>{cdata(path)}</value><scaleMin>0</scaleMin><scaleMax>1</scaleMax>"
            f"</partial></path><arguments><partial><type>VALUE</type>"
            f"<conversion>{conversion}</conversion><value>{cdata(var)}</value>"
            f"<scaleMin>{lo}</scaleMin><scaleMax>{hi}</scaleMax></partial></arguments></osc>")


def node(kind, name, frame, msgs, values, extra=(), children=""):
    props = "".join([prop("s", "name", name), prop("r", "frame", frame), *extra])
    kids = f"<children>{children}</children>" if children else ""
    return (f"<node ID='{uuid.uuid5(uuid.NAMESPACE_URL, 'faderbridge/' + name)}' type='{kind}'>"
            f"<properties>{props}</properties><values>{values}</values>"
            f"<messages>{''.join(msgs)}</messages>{kids}</node>")


def fader(name, path, frame, lo, hi, default, touch=True, horizontal=False):
    msgs = [osc_msg(path, "x", "FLOAT", lo, hi)]
    if touch:
        msgs.append(osc_msg(path + "/touch", "touch", "INTEGER", 0, 1, receive=False))
    extra = [prop("i", "orientation", 1 if horizontal else 0)]
    return node("FADER", name, frame, msgs,
                value("x", default) + value("touch", "false"), extra)


def meter(name, path, frame):
    # A fader that only listens: the first argument (peak dBFS) from -60..0.
    msgs = [osc_msg(path, "x", "FLOAT", -60, 0, send=False)]
    return node("FADER", name, frame, msgs, value("x", "0"),
                [prop("b", "interactive", 0), prop("i", "orientation", 0)])


def toggle(name, path, frame):
    msgs = [osc_msg(path, "x", "INTEGER", 0, 1)]
    return node("BUTTON", name, frame, msgs, value("x", "0") + value("touch", "false"),
                [prop("i", "buttonType", 1)])


LUA = """local last = -100000
function update()
  local now = getMillis()
  if now - last > 8000 then
    last = now
    sendOSC('/subscribe', 10)
    sendOSC('/meters/subscribe', 10)
  end
end"""


def tosc():
    kids = []
    # dB range of the linear fader travel in TouchOSC (-60..+10 dB).
    for i in range(1, STRIPS + 1):
        x = (i - 1) * 120
        kids += [
            meter(f"meter{i}", f"/meters/ch/{i}", (x, 0, 20, 500)),
            fader(f"fader{i}", f"/ch/{i}/fader_db", (x + 25, 0, 90, 500), -60, 10,
                  str(60 / 70)),
            toggle(f"mute{i}", f"/ch/{i}/mute", (x, 510, 115, 50)),
            fader(f"pan{i}", f"/ch/{i}/pan", (x, 570, 115, 40), -1, 1, "0.5",
                  touch=False, horizontal=True),
        ]
    x = STRIPS * 120 + 20
    kids += [
        meter("meter_master", "/meters/master", (x, 0, 20, 500)),
        fader("fader_master", "/master/fader_db", (x + 25, 0, 90, 500), -60, 10,
              str(60 / 70)),
    ]
    root = node("GROUP", "faderbridge", (0, 0, x + 130, 620), [], "",
                [prop("s", "script", LUA)], "".join(kids))
    return f"<?xml version='1.0' encoding='UTF-8'?><lexml version='3'>{root}</lexml>"


def main():
    with open(os.path.join(HERE, "faderbridge-8ch.json"), "w") as f:
        json.dump(osc_session(), f, indent=1)
        f.write("\n")
    xml = tosc().encode()
    with open(os.path.join(HERE, "faderbridge-8ch.tosc"), "wb") as f:
        # Stored (level 0) zlib blocks: any zlib reader opens it, and so can the test.
        f.write(zlib.compress(xml, 0))


if __name__ == "__main__":
    main()
