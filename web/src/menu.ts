// The side menu of each personal cabinet (ADM-1): the seed's sections, in the seed's order,
// each shown only when the user's rights allow reading it (rights.ts mirrors api/rbac.py).
import type { Text } from "./crud/types";
import { can, type PolicyName, type Principal } from "./rights";
import { CLIENT_SECTIONS, GLOBAL_SECTIONS } from "./sections";

export interface MenuItem {
  key: string;
  label: Text;
  policy: PolicyName;
  /** Sections of this build that have a page; the rest are not listed. */
  children?: MenuItem[];
}

const leaf = (key: string, label: string, policy: PolicyName): MenuItem => ({ key, label, policy });

export const CLIENT_MENU: MenuItem[] = [
  {
    key: "numbering",
    label: "menu.numbering",
    policy: "internal_numbers",
    children: [
      leaf("internal-numbers", "menu.internalNumbers", "internal_numbers"),
      leaf("external-numbers", "menu.externalNumbers", "external_numbers"),
    ],
  },
  leaf("ports", "menu.ports", "client_config"),
  {
    key: "services",
    label: "menu.services",
    policy: "client_config",
    children: [
      leaf("queues", "menu.queues", "client_config"),
      leaf("forwarding-numbers", "menu.forwardingNumbers", "client_config"),
      leaf("voice-menus", "menu.voiceMenus", "client_config"),
    ],
  },
  leaf("classifiers", "menu.classifiers", "client_config"),
  leaf("pickup-groups", "menu.pickupGroups", "client_config"),
  {
    key: "media",
    label: "menu.media",
    policy: "client_config",
    children: [
      leaf("media-packs", "menu.mediaPacks", "client_config"),
      leaf("media-files", "menu.mediaFiles", "client_config"),
    ],
  },
  leaf("voicemail-boxes", "menu.voicemailBoxes", "client_config"),
  leaf("campaigns", "menu.campaigns", "campaigns"),
  leaf("webhooks", "menu.webhooks", "client_config"),
  leaf("calls", "menu.cdr", "cdr"),
  leaf("statistics", "menu.statistics", "cdr"),
  leaf("active-calls", "menu.activeCalls", "active_calls"),
  leaf("users", "menu.users", "client_users"),
  leaf("audit", "menu.audit", "audit"),
];

export const PROVIDER_MENU: MenuItem[] = [
  leaf("clients", "menu.clients", "clients"),
  leaf("operators", "menu.operators", "system"),
  // A tariff's rates are edited on the tariff's Ставки tab.
  leaf("tariffs", "menu.tariffs", "tariffs"),
  leaf("staff-users", "menu.staffUsers", "system"),
  leaf("audit", "menu.audit", "audit"),
];

/** Extra pages that are not generic sections but have their own component. */
export const CUSTOM_PAGES = new Set<string>(["client:calls", "client:statistics", "client:active-calls", "client:audit", "global:audit"]);

function built(key: string, scope: "client" | "global"): boolean {
  const sections = scope === "client" ? CLIENT_SECTIONS : GLOBAL_SECTIONS;
  return key in sections || CUSTOM_PAGES.has(`${scope}:${key}`);
}

/** The menu as this user sees it: allowed and built items; groups without items vanish. */
export function visibleMenu(me: Principal, menu: MenuItem[], scope: "client" | "global"): MenuItem[] {
  return menu.flatMap((item) => {
    if (item.children) {
      const children = visibleMenu(me, item.children, scope);
      return children.length ? [{ ...item, children }] : [];
    }
    return can(me, item.policy, "read") && built(item.key, scope) ? [item] : [];
  });
}
