// Labels: Chinese first, English beside (the centre's operators read Chinese; visitors and
// engineers English).

export const SEVERITIES = ["critical", "high", "medium", "low", "info"];
export const LEVELS = ["community", "street", "district", "city"];

const SEVERITY = {
  critical: ["红色", "critical"],
  high: ["橙色", "high"],
  medium: ["黄色", "medium"],
  low: ["蓝色", "low"],
  info: ["提示", "info"],
};
const LEVEL = {
  community: ["社区", "community"],
  street: ["街道", "street"],
  district: ["区", "district"],
  city: ["市", "city"],
};
const STATE = {
  open: ["待签收", "open"],
  acknowledged: ["已签收", "acknowledged"],
  handled: ["已处置", "handled"],
  closed: ["已结案", "closed"],
  rework: ["返工", "rework"],
  voided: ["已注销", "voided"],
  returned: ["已退回", "returned"],
};
const ACTION = {
  ack: ["签收", "Ack"],
  handled: ["处置反馈", "Handled"],
  verify_ok: ["核查通过", "Verify OK"],
  verify_fail: ["核查不通过", "Verify failed"],
  return: ["退回", "Return"],
  extend: ["延期", "Extend"],
  void: ["注销", "Void"],
  comment: ["备注", "Comment"],
};
const EVENT = {
  opened: ["立案", "opened"],
  updated: ["更新", "updated"],
  escalated: ["升级督办", "escalated"],
  acknowledged: ["签收", "acknowledged"],
  handled: ["处置反馈", "handled"],
  closed: ["核查结案", "closed"],
  rework: ["返工", "rework"],
  returned: ["退回", "returned"],
  extended: ["延期", "extended"],
  voided: ["注销", "voided"],
  overdue: ["超时", "overdue"],
  dispatched: ["派遣", "dispatched"],
  commented: ["备注", "comment"],
  comment: ["备注", "comment"],
};

function pair(table, key) {
  const p = table[key];
  return p ? `${p[0]} ${p[1]}` : String(key ?? "");
}

export const severity = (s) => pair(SEVERITY, s);
export const level = (l) => pair(LEVEL, l);
export const state = (s) => pair(STATE, s);
export const action = (a) => pair(ACTION, a);
export const eventType = (t) => pair(EVENT, t);
export const levelZh = (l) => (LEVEL[l] ? LEVEL[l][0] : l);

/** "剩 12分 left" / "超时 3分 overdue": minutes (or hours) between now and the deadline. */
export function timeLeft(ms) {
  const abs = Math.abs(ms);
  const span = abs >= 3_600_000 ? `${(abs / 3_600_000).toFixed(1)}h` : `${Math.ceil(abs / 60_000)}min`;
  return ms >= 0 ? `剩 ${span} left` : `超时 ${span} overdue`;
}

/** Local date and time of an RFC 3339 instant, seconds included. */
export function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
