// tooltip.js — one floating box near the pointer, shared by the canvases.

export class Tooltip {
  constructor(el) {
    this.el = el;
  }

  show(e, text) {
    const el = this.el;
    el.textContent = text;
    el.hidden = false;
    const pad = 14;
    const w = el.offsetWidth;
    const h = el.offsetHeight;
    const x = e.clientX + pad + w > window.innerWidth ? e.clientX - pad - w : e.clientX + pad;
    const y = e.clientY + pad + h > window.innerHeight ? e.clientY - pad - h : e.clientY + pad;
    el.style.left = `${Math.max(0, x)}px`;
    el.style.top = `${Math.max(0, y)}px`;
  }

  hide() {
    this.el.hidden = true;
  }
}
