// The create/edit page of any section: the seed's tabs (Общие, ДВО, Ограничения, …), Save and
// Close, delete with confirmation, API errors on the field they name (issue 6 §3).
import { Alert, Button, Group, Loader, Paper, SimpleGrid, Stack, Tabs, Title } from "@mantine/core";
import { notifications } from "@mantine/notifications";
import { useEffect, useMemo, useState } from "react";
import { useTranslation } from "react-i18next";
import { useNavigate } from "react-router-dom";
import { http } from "../api/client";
import { useMe } from "../auth";
import { can } from "../rights";
import { mapApiError, tabOfErrors } from "./errors";
import { emptyValue, FieldInput, type Errors } from "./fields";
import { useDelete } from "./remove";
import { sectionPath, useInvalidate, useItem } from "./resource";
import { getPath, setPath, useText } from "./text";
import type { FieldDef, Row, SectionDef } from "./types";

export function sectionUrl(section: SectionDef, clientId: number | null): string {
  return section.scope === "client" ? `/clients/${clientId}/${section.key}` : `/${section.key}`;
}

function allFields(section: SectionDef): FieldDef[] {
  return section.tabs.flatMap((t) => t.fields ?? []);
}

function initialValues(section: SectionDef, row: Row | undefined): Row {
  return allFields(section).reduce<Row>((acc, f) => {
    const current = row === undefined || f.writeOnly ? undefined : getPath(row, f.name);
    return setPath(acc, f.name, current === undefined ? emptyValue(f) : current);
  }, {});
}

function keepColumns(field: FieldDef, value: unknown): unknown {
  // Rows read back carry ids and positions the write schema refuses: send only the columns.
  if (field.kind !== "rows" || !Array.isArray(value)) return value;
  const names = (field.columns ?? []).map((c) => c.name);
  return (value as Row[]).map((r) => Object.fromEntries(names.map((n) => [n, r[n] ?? null])));
}

function buildBody(section: SectionDef, values: Row, original: Row | undefined, creating: boolean): Row {
  let body: Row = {};
  for (const f of allFields(section)) {
    if (f.readOnly || (!creating && f.createOnly)) continue;
    const value = keepColumns(f, getPath(values, f.name));
    if (f.writeOnly && (value === "" || value === null)) continue;
    if (!creating && original && JSON.stringify(value) === JSON.stringify(keepColumns(f, getPath(original, f.name)))) continue;
    body = setPath(body, f.name, value);
  }
  return body;
}

function missingRequired(section: SectionDef, values: Row, message: string, creating: boolean): Errors {
  const errors: Errors = {};
  for (const f of allFields(section)) {
    if (f.writeOnly && !creating) continue;
    const v = getPath(values, f.name);
    if (f.required && (v === "" || v === null || v === undefined)) errors[f.name] = message;
  }
  return errors;
}

interface Props {
  section: SectionDef;
  clientId: number | null;
  id: string | undefined;
  /** Values fixed by the page that embeds the form (e.g. a contact's classifier). */
  fixed?: Row;
  onClose?: (created?: Row) => void;
}

export function ResourceForm({ section, clientId, id, fixed, onClose }: Props) {
  const text = useText();
  const { t } = useTranslation();
  const me = useMe();
  const navigate = useNavigate();
  const invalidate = useInvalidate();
  const path = sectionPath(section, clientId);
  const item = useItem(path, id);
  const creating = id === undefined;
  const listUrl = sectionUrl(section, clientId);
  const close = onClose ?? (() => navigate(listUrl));
  const remove = useDelete(path, () => close());

  const [values, setValues] = useState<Row>(() => initialValues(section, undefined));
  const [errors, setErrors] = useState<Errors>({});
  const [general, setGeneral] = useState<string | null>(null);
  const [tab, setTab] = useState<string | null>(section.tabs[0]?.key ?? null);
  const [saving, setSaving] = useState(false);

  useEffect(() => {
    if (item.data) setValues(initialValues(section, item.data));
  }, [item.data, section]);

  const mayWrite = can(me, section.policy, creating ? "create" : "update");
  const mayDelete = !creating && can(me, section.policy, "delete");
  const tabs = useMemo(
    () => section.tabs.filter((tb) => (tb.fields || !creating) && (!tb.policy || can(me, tb.policy, "read"))),
    [section, creating, me],
  );

  const change = (name: string, value: unknown) => {
    setValues((v) => setPath(v, name, value));
    setErrors((e) => Object.fromEntries(Object.entries(e).filter(([k]) => k !== name && !k.startsWith(`${name}.`))));
  };

  const save = async () => {
    const missing = missingRequired(section, values, t("common.required"), creating);
    if (Object.keys(missing).length) {
      setErrors(missing);
      setTab(tabOfErrors(tabs, missing) ?? tab);
      return;
    }
    setSaving(true);
    setGeneral(null);
    try {
      const body = { ...buildBody(section, values, item.data, creating), ...(creating ? fixed : {}) };
      const saved = creating
        ? await http<Row>("POST", path, { body })
        : await http<Row>("PATCH", `${path}/${id}`, { body });
      notifications.show({ message: t(creating ? "common.created" : "common.saved"), color: "green" });
      await invalidate(path);
      const hasCustomTabs = section.tabs.some((tb) => tb.render);
      if (creating && hasCustomTabs && !onClose) navigate(`${listUrl}/${saved.id}`, { replace: true });
      else close(saved);
    } catch (err) {
      const mapped = mapApiError(err, tabs, t("common.error"));
      setErrors(mapped.fields);
      setGeneral(mapped.general);
      setTab(tabOfErrors(tabs, mapped.fields) ?? tab);
    } finally {
      setSaving(false);
    }
  };

  if (!creating && item.isPending) return <Loader aria-label={t("common.loading")} />;
  if (!creating && item.error) return <Alert color="red">{item.error.message}</Alert>;

  const heading = creating ? `${text(section.title)}: ${t("actions.create")}` : `${text(section.title)}: ${section.rowLabel(item.data ?? {})}`;
  const Extra = section.extra;
  return (
    <Stack>
      <Title order={2}>{heading}</Title>
      {general && <Alert color="red" title={t("common.error")}>{general}</Alert>}
      <Paper withBorder p="md">
        <form
          onSubmit={(e) => {
            e.preventDefault();
            // React bubbles events through portals: a form in a modal inside a tab (a
            // classifier's contact) must not also submit the page's form.
            e.stopPropagation();
            void save();
          }}
        >
          <Tabs value={tab} onChange={setTab} keepMounted={false}>
            <Tabs.List>
              {tabs.map((tb) => (
                <Tabs.Tab key={tb.key} value={tb.key}>
                  {text(tb.label)}
                </Tabs.Tab>
              ))}
            </Tabs.List>
            {tabs.map((tb) => (
              <Tabs.Panel key={tb.key} value={tb.key} pt="md">
                {tb.fields ? (
                  <SimpleGrid cols={{ base: 1, sm: 2 }}>
                    {tb.fields
                      .filter((f) => (creating || !f.createOnly) && (!f.policy || can(me, f.policy, "read")))
                      .map((f, index) => (
                        <div key={f.name} style={f.kind === "rows" || f.kind === "services" || f.kind === "textarea" ? { gridColumn: "1 / -1" } : undefined}>
                          <FieldInput
                            field={f}
                            value={getPath(values, f.name)}
                            onChange={(v) => change(f.name, v)}
                            errors={errors}
                            path={f.name}
                            clientId={clientId}
                            editing={!creating}
                            autoFocus={creating && tb === tabs[0] && index === 0}
                          />
                        </div>
                      ))}
                  </SimpleGrid>
                ) : (
                  tb.render && item.data && <tb.render clientId={clientId} row={item.data} section={section} />
                )}
              </Tabs.Panel>
            ))}
          </Tabs>
          {Extra && item.data && <Extra clientId={clientId} row={item.data} section={section} />}
          <Group mt="lg">
            {mayWrite && (
              <Button type="submit" loading={saving}>
                {t("actions.save")}
              </Button>
            )}
            <Button variant="default" onClick={() => close()}>
              {t("actions.close")}
            </Button>
            {mayDelete && (
              <Button color="red" variant="light" ml="auto" onClick={() => remove(id, section.rowLabel(item.data ?? {}))}>
                {t("actions.delete")}
              </Button>
            )}
          </Group>
        </form>
      </Paper>
    </Stack>
  );
}
