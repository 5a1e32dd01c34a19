//! http-webhook: POSTs the alert to the URL its binding gives (parameter `url`; the binding's
//! `http.request` grant must allow that URL's prefix) and records the answer's status.
//!
//! Build (Zig from PyPI's `ziglang`), with the Zig bindings beside it:
//!   cp ../../include/vigil_runbook.zig . && python3 -m ziglang build-exe http-webhook.zig \
//!     -target wasm32-wasi -O ReleaseSmall -fno-entry -rdynamic --name http-webhook
const std = @import("std");
const v = @import("vigil_runbook.zig");

var input: [16384]u8 = undefined;
var reply: [16384]u8 = undefined;
var args: [20000]u8 = undefined;

fn say(level: i32, msg: []const u8) void {
    v.log(level, msg.ptr, @intCast(msg.len));
}

/// The JSON-escaped contents of the first string field `key` in `json`, escapes kept.
fn stringField(json: []const u8, key: []const u8) ?[]const u8 {
    var pat: [64]u8 = undefined;
    const p = std.fmt.bufPrint(&pat, "\"{s}\":\"", .{key}) catch return null;
    const at = std.mem.indexOf(u8, json, p) orelse return null;
    const start = at + p.len;
    var i = start;
    while (i < json.len and json[i] != '"') : (i += 1) {
        if (json[i] == '\\') i += 1;
    }
    if (i > json.len) return null;
    return json[start..i];
}

/// The value of the object field `key` (`"key":{...}`), braces balanced, strings skipped.
fn objectField(json: []const u8, key: []const u8) ?[]const u8 {
    var pat: [64]u8 = undefined;
    const p = std.fmt.bufPrint(&pat, "\"{s}\":{{", .{key}) catch return null;
    const at = std.mem.indexOf(u8, json, p) orelse return null;
    const start = at + p.len - 1;
    var depth: usize = 0;
    var in_str = false;
    var i = start;
    while (i < json.len) : (i += 1) {
        const ch = json[i];
        if (in_str) {
            if (ch == '\\') {
                i += 1;
            } else if (ch == '"') in_str = false;
            continue;
        }
        switch (ch) {
            '"' => in_str = true,
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if (depth == 0) return json[start .. i + 1];
            },
            else => {},
        }
    }
    return null;
}

export fn vigil_runbook_v1() i32 {
    const n = v.input(&input, input.len);
    if (n < 0 or n > input.len) {
        say(v.ERROR, "the input does not fit");
        return 2;
    }
    const in = input[0..@intCast(n)];
    const url = stringField(in, "url") orelse {
        say(v.ERROR, "parameter url is missing");
        return 3;
    };
    const alert = objectField(in, "alert") orelse "{}";
    const body = std.fmt.bufPrint(&args, "{{\"method\":\"POST\",\"url\":\"{s}\",\"json\":{s}}}", .{ url, alert }) catch {
        say(v.ERROR, "the alert is too large to send");
        return 4;
    };
    const name = "http.request";
    const status = v.call(name, name.len, body.ptr, @intCast(body.len));
    const got = v.result(&reply, reply.len);
    const r = if (got >= 0 and got <= reply.len) reply[0..@intCast(got)] else reply[0..0];
    if (status < 0) {
        say(v.ERROR, r);
        return 5;
    }
    say(v.INFO, r);
    v.output(r.ptr, @intCast(r.len));
    return 0;
}
