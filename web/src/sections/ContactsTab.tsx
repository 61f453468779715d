// The classifier's Контакты tab (CLS-1): its contacts listed, created and edited in place.
import { childListTab } from "../crud/ChildList";
import { contacts } from "./contacts";

export const ContactsTab = childListTab(contacts, "classifier_id");
