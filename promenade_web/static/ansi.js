/* ANSI SGR escape codes -> styled DOM spans, never innerHTML.
 *
 * Log lines are untrusted text: every piece ends up in a text node, styles are set
 * through classes (16 colours, themed in style.css) or the CSSOM (256 and truecolour).
 * Other escape sequences (cursor moves, OSC titles) are dropped.
 */
(function () {
  "use strict";

  // CSI ... final byte, OSC ... BEL/ST, single-char escapes, other C0 controls but TAB.
  const ESCAPES = /\x1b\[([0-?]*)[ -\/]*([@-~])|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]?|[\x00-\x08\x0b-\x1f\x7f]/g;

  function plainText(text) {
    return text.indexOf("\x1b") < 0 && !/[\x00-\x08\x0b-\x1f\x7f]/.test(text)
      ? text
      : text.replace(ESCAPES, "");
  }

  function xterm256(n) {
    if (n < 16) return null; // handled as a themed class
    if (n >= 232) {
      const v = 8 + (n - 232) * 10;
      return `rgb(${v}, ${v}, ${v})`;
    }
    n -= 16;
    const steps = [0, 95, 135, 175, 215, 255];
    return `rgb(${steps[Math.floor(n / 36)]}, ${steps[Math.floor(n / 6) % 6]}, ${steps[n % 6]})`;
  }

  function freshStyle() {
    return { fg: null, bg: null, fgRgb: null, bgRgb: null, bold: false, dim: false,
             italic: false, underline: false, inverse: false, strike: false };
  }

  // Apply one SGR parameter list to `st` (mutated).
  function applySgr(st, params) {
    const codes = params === "" ? [0] : params.split(/[;:]/).map((p) => (p === "" ? 0 : +p));
    for (let i = 0; i < codes.length; i++) {
      const c = codes[i];
      if (c === 0) Object.assign(st, freshStyle());
      else if (c === 1) st.bold = true;
      else if (c === 2) st.dim = true;
      else if (c === 3) st.italic = true;
      else if (c === 4) st.underline = true;
      else if (c === 7) st.inverse = true;
      else if (c === 9) st.strike = true;
      else if (c === 21 || c === 22) { st.bold = false; st.dim = false; }
      else if (c === 23) st.italic = false;
      else if (c === 24) st.underline = false;
      else if (c === 27) st.inverse = false;
      else if (c === 29) st.strike = false;
      else if (c >= 30 && c <= 37) { st.fg = c - 30; st.fgRgb = null; }
      else if (c >= 90 && c <= 97) { st.fg = c - 90 + 8; st.fgRgb = null; }
      else if (c === 39) { st.fg = null; st.fgRgb = null; }
      else if (c >= 40 && c <= 47) { st.bg = c - 40; st.bgRgb = null; }
      else if (c >= 100 && c <= 107) { st.bg = c - 100 + 8; st.bgRgb = null; }
      else if (c === 49) { st.bg = null; st.bgRgb = null; }
      else if (c === 38 || c === 48) {
        const fg = c === 38;
        let colour = null, index = null;
        if (codes[i + 1] === 5 && i + 2 < codes.length) {
          const n = codes[i + 2] & 255;
          if (n < 16) index = n; else colour = xterm256(n);
          i += 2;
        } else if (codes[i + 1] === 2 && i + 4 < codes.length) {
          const [r, g, b] = codes.slice(i + 2, i + 5).map((v) => Math.max(0, Math.min(255, v)));
          colour = `rgb(${r}, ${g}, ${b})`;
          i += 4;
        } else {
          break; // malformed: ignore the rest of this sequence
        }
        if (fg) { st.fg = index; st.fgRgb = colour; } else { st.bg = index; st.bgRgb = colour; }
      }
    }
  }

  function styled(st) {
    return st.fg !== null || st.bg !== null || st.fgRgb || st.bgRgb || st.bold || st.dim ||
      st.italic || st.underline || st.inverse || st.strike;
  }

  /* Split a line into [{text, style|null}] segments; `plain` is their concatenation. */
  function parse(text) {
    if (text.indexOf("\x1b") < 0) {
      const plain = plainText(text);
      return { plain, segs: [{ text: plain, style: null }] };
    }
    const segs = [];
    const st = freshStyle();
    let last = 0;
    let plain = "";
    ESCAPES.lastIndex = 0;
    let m;
    while ((m = ESCAPES.exec(text)) !== null) {
      if (m.index > last) {
        const piece = text.slice(last, m.index);
        segs.push({ text: piece, style: styled(st) ? { ...st } : null });
        plain += piece;
      }
      last = ESCAPES.lastIndex;
      if (m[2] === "m") applySgr(st, m[1]);
    }
    if (last < text.length) {
      const piece = text.slice(last);
      segs.push({ text: piece, style: styled(st) ? { ...st } : null });
      plain += piece;
    }
    return { plain, segs };
  }

  function decorate(span, s) {
    let fg = s.fg, bg = s.bg, fgRgb = s.fgRgb, bgRgb = s.bgRgb;
    if (s.inverse) {
      [fg, bg] = [bg === null ? "bgdefault" : bg, fg === null ? "fgdefault" : fg];
      [fgRgb, bgRgb] = [bgRgb, fgRgb];
    }
    const cls = [];
    if (fg === "bgdefault") cls.push("ansi-fg-inverse");
    else if (fg !== null) cls.push(`ansi-fg-${fg}`);
    if (bg === "fgdefault") cls.push("ansi-bg-inverse");
    else if (bg !== null) cls.push(`ansi-bg-${bg}`);
    if (s.bold) cls.push("ansi-bold");
    if (s.dim) cls.push("ansi-dim");
    if (s.italic) cls.push("ansi-italic");
    if (s.underline) cls.push("ansi-underline");
    if (s.strike) cls.push("ansi-strike");
    if (cls.length) span.className = cls.join(" ");
    if (fgRgb) span.style.color = fgRgb;
    if (bgRgb) span.style.backgroundColor = bgRgb;
  }

  /* Case-insensitive match ranges of `needle` in `plain`. */
  function findMatches(plain, needleLower) {
    if (!needleLower) return [];
    const hay = plain.toLowerCase();
    const out = [];
    let at = hay.indexOf(needleLower);
    while (at >= 0) {
      out.push([at, at + needleLower.length]);
      at = hay.indexOf(needleLower, at + needleLower.length);
    }
    return out;
  }

  /* Append the segments to `parent`, wrapping `matches` ([start, end) in plain text)
   * in <mark> elements. */
  function render(parent, segs, matches) {
    let offset = 0;
    let mi = 0;
    for (const seg of segs) {
      const end = offset + seg.text.length;
      let pos = offset;
      while (pos < end) {
        while (mi < matches.length && matches[mi][1] <= pos) mi++;
        let stop = end;
        let marked = false;
        if (mi < matches.length) {
          const [ms, me] = matches[mi];
          if (ms <= pos) { marked = true; stop = Math.min(end, me); }
          else stop = Math.min(end, ms);
        }
        const text = seg.text.slice(pos - offset, stop - offset);
        let node;
        if (seg.style) {
          node = document.createElement("span");
          decorate(node, seg.style);
          node.textContent = text;
        } else {
          node = document.createTextNode(text);
        }
        if (marked) {
          const mark = document.createElement("mark");
          mark.appendChild(node);
          node = mark;
        }
        parent.appendChild(node);
        pos = stop;
      }
      offset = end;
    }
  }

  window.PromenadeAnsi = { parse, plainText, findMatches, render };
})();
