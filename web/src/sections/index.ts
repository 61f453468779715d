// Every section the UI knows, by route segment.
import type { SectionDef } from "../crud/types";
import { clients } from "./admin";
import {
  campaigns,
  classifiers,
  forwardingNumbers,
  mediaFiles,
  mediaPacks,
  queues,
  voiceMenus,
  voicemailBoxes,
} from "./components";
import { contacts } from "./contacts";
import { externalNumbers, internalNumbers, pickupGroups, ports } from "./numbering";
import { operators, staffUsers, tariffRates, tariffs } from "./provider";
import { users } from "./users";
import { webhooks } from "./webhooks";

export const CLIENT_SECTIONS: Record<string, SectionDef> = Object.fromEntries(
  [
    internalNumbers,
    externalNumbers,
    ports,
    pickupGroups,
    forwardingNumbers,
    queues,
    voiceMenus,
    classifiers,
    contacts,
    mediaPacks,
    mediaFiles,
    voicemailBoxes,
    campaigns,
    webhooks,
    users,
  ].map((s) => [s.key, s]),
);

export const GLOBAL_SECTIONS: Record<string, SectionDef> = Object.fromEntries(
  [clients, operators, tariffs, tariffRates, staffUsers].map((s) => [s.key, s]),
);
