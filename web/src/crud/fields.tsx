// One input per field kind; labels come from the section config in the current language.
import {
  ActionIcon,
  Button,
  Checkbox,
  Fieldset,
  Group,
  MultiSelect,
  NumberInput,
  PasswordInput,
  Radio,
  Select,
  Stack,
  Switch,
  Table,
  Text as MText,
  TextInput,
  Textarea,
} from "@mantine/core";
import { IconPlus, IconTrash } from "@tabler/icons-react";
import { useEffect, useState } from "react";
import { useTranslation } from "react-i18next";
import { useRefOptions } from "./resource";
import { getPath, useText } from "./text";
import type { FieldDef, Row } from "./types";

export const SERVICE_FLAGS = [
  "transfer",
  "pickup",
  "hold",
  "call_park",
  "auto_recording",
  "recording_on_demand",
  "call_return",
  "video",
] as const;

// The defaults of the API's Services object (ДВО, PRODUCT.md §4.9).
export const DEFAULT_SERVICES: Row = {
  transfer: true,
  pickup: true,
  hold: true,
  call_park: false,
  auto_recording: false,
  recording_on_demand: false,
  call_return: false,
  ringback: "ringback",
  video: false,
};

export type Errors = Record<string, string>;

export interface FieldProps {
  field: FieldDef;
  value: unknown;
  onChange: (value: unknown) => void;
  errors: Errors;
  /** Full path of this field in the form (differs from field.name inside rows). */
  path: string;
  clientId: number | null;
  editing: boolean;
  /** Inside a table row: the label becomes the column header, kept as aria-label. */
  compact?: boolean;
  /** The first field of a new object's form takes the focus (keyboard users start typing). */
  autoFocus?: boolean;
}

export function emptyValue(field: FieldDef): unknown {
  if (field.default !== undefined) return structuredClone(field.default);
  if (field.nullable) return null;
  switch (field.kind) {
    case "switch":
      return false;
    case "multiref":
    case "multiselect":
    case "rows":
    case "tags":
      return [];
    case "services":
      return { ...DEFAULT_SERVICES };
    case "text":
    case "textarea":
    case "password":
      return "";
    default:
      return null;
  }
}

export function FieldInput(props: FieldProps) {
  const { field, value, onChange, errors, path, editing, compact, autoFocus } = props;
  const text = useText();
  const { t } = useTranslation();
  const label = text(field.label);
  const common = {
    label: compact ? undefined : label,
    "aria-label": label,
    error: errors[path],
    // A write-only field (a password) is required only when creating: empty on edit keeps it.
    required: field.required && !(editing && field.writeOnly),
    disabled: field.readOnly,
    description: field.help && !compact ? text(field.help) : undefined,
    placeholder: field.placeholder ? text(field.placeholder) : undefined,
    autoFocus,
  };
  switch (field.kind) {
    case "text":
      return (
        <TextInput
          {...common}
          value={(value as string) ?? ""}
          onChange={(e) => onChange(field.nullable && e.currentTarget.value === "" ? null : e.currentTarget.value)}
        />
      );
    case "money":
      // Exact decimals travel as strings (docs/api-admin.md "Money"); empty means "no limit".
      return (
        <TextInput
          {...common}
          inputMode="decimal"
          value={(value as string) ?? ""}
          onChange={(e) => onChange(e.currentTarget.value === "" ? null : e.currentTarget.value)}
        />
      );
    case "textarea":
      return <Textarea {...common} autosize minRows={2} value={(value as string) ?? ""} onChange={(e) => onChange(e.currentTarget.value)} />;
    case "password":
      return (
        <PasswordInput
          {...common}
          autoComplete="new-password"
          placeholder={editing && field.writeOnly ? t("common.keepWhenEmpty") : common.placeholder}
          value={(value as string) ?? ""}
          onChange={(e) => onChange(e.currentTarget.value)}
        />
      );
    case "int":
      return (
        <NumberInput
          {...common}
          allowDecimal={false}
          min={field.min}
          max={field.max}
          value={value === null || value === undefined ? "" : (value as number)}
          onChange={(v) => onChange(v === "" ? null : Number(v))}
        />
      );
    case "switch":
      return (
        <Switch
          label={label}
          error={errors[path]}
          disabled={field.readOnly}
          checked={Boolean(value)}
          onChange={(e) => onChange(e.currentTarget.checked)}
        />
      );
    case "select":
      return (
        <Select
          {...common}
          clearable={!field.required}
          data={(field.options ?? []).map((o) => ({ value: o.value, label: text(o.label) }))}
          value={(value as string) ?? null}
          onChange={(v) => onChange(v)}
        />
      );
    case "ref":
      return <RefSelect {...props} common={common} />;
    case "multiref":
      return <RefMultiSelect {...props} common={common} />;
    case "multiselect":
      return (
        <MultiSelect
          {...common}
          data={(field.options ?? []).map((o) => ({ value: o.value, label: text(o.label) }))}
          value={(value as string[]) ?? []}
          onChange={(v) => onChange(v)}
        />
      );
    case "tags":
      return <LinesInput {...props} common={common} />;
    case "services":
      return <ServicesInput {...props} />;
    case "rows":
      return <RowsInput {...props} />;
  }
}

type Common = Record<string, unknown>;

function RefSelect(props: FieldProps & { common: Common }) {
  const { field, value, onChange, clientId, common } = props;
  const { options, loading } = useRefOptions(field.ref, clientId);
  const { t } = useTranslation();
  return (
    <Select
      {...common}
      searchable
      clearable={!field.required}
      nothingFoundMessage={loading ? t("common.loading") : t("common.nothingFound")}
      data={options}
      value={value === null || value === undefined ? null : String(value)}
      onChange={(v) => onChange(v === null ? null : Number(v))}
    />
  );
}

function RefMultiSelect(props: FieldProps & { common: Common }) {
  const { field, value, onChange, clientId, common } = props;
  const { options } = useRefOptions(field.ref, clientId);
  return (
    <MultiSelect
      {...common}
      searchable
      data={options}
      value={((value as number[]) ?? []).map(String)}
      onChange={(v) => onChange(v.map(Number))}
    />
  );
}

function splitLines(text: string): string[] {
  return text.split(/[\s,;]+/).filter(Boolean);
}

/** A list of short strings (a trunk's addresses) typed one per line. */
function LinesInput(props: FieldProps & { common: Common }) {
  const { value, onChange, common } = props;
  const { t } = useTranslation();
  const list = (value as string[] | null) ?? [];
  const [text, setText] = useState(list.join("\n"));
  useEffect(() => {
    // Values loaded from the server replace what is typed only when they differ.
    if (JSON.stringify(splitLines(text)) !== JSON.stringify(list)) setText(list.join("\n"));
  }, [JSON.stringify(list)]);
  return (
    <Textarea
      {...common}
      description={(common.description as string | undefined) ?? t("common.linesHelp")}
      autosize
      minRows={2}
      value={text}
      onChange={(e) => {
        setText(e.currentTarget.value);
        onChange(splitLines(e.currentTarget.value));
      }}
    />
  );
}

function ServicesInput({ field, value, onChange, errors, path }: FieldProps) {
  const text = useText();
  const { t } = useTranslation();
  const services = { ...DEFAULT_SERVICES, ...((value as Row) ?? {}) };
  const set = (key: string, v: unknown) => onChange({ ...services, [key]: v });
  const error = Object.entries(errors).find(([k]) => k === path || k.startsWith(`${path}.`))?.[1];
  return (
    <Fieldset legend={text(field.label)}>
      <Stack gap="xs">
        {SERVICE_FLAGS.map((key) => (
          <Checkbox
            key={key}
            label={t(`services.${key}`)}
            checked={Boolean(services[key])}
            onChange={(e) => set(key, e.currentTarget.checked)}
          />
        ))}
        <Radio.Group label={t("services.ringback")} value={String(services.ringback)} onChange={(v) => set("ringback", v)}>
          <Group mt="xs">
            <Radio value="ringback" label={t("services.ringback_ringback")} />
            <Radio value="music" label={t("services.ringback_music")} />
          </Group>
        </Radio.Group>
        {error && <MText c="red" size="sm">{error}</MText>}
      </Stack>
    </Fieldset>
  );
}

function RowsInput(props: FieldProps) {
  const { field, value, onChange, errors, path, clientId, editing } = props;
  const text = useText();
  const rows = (value as Row[]) ?? [];
  const columns = field.columns ?? [];
  const setCell = (i: number, name: string, v: unknown) =>
    onChange(rows.map((r, j) => (j === i ? { ...r, [name]: v } : r)));
  // An error of one cell is shown on that cell, not once more under the table.
  const inCell = Object.keys(errors).some((k) => k.startsWith(`${path}.`));
  const own = inCell ? undefined : errors[path];
  return (
    <Stack gap="xs">
      <MText fw={500} size="sm">{text(field.label)}</MText>
      <Table withTableBorder>
        <Table.Thead>
          <Table.Tr>
            {columns.map((c) => (
              <Table.Th key={c.name}>{text(c.label)}</Table.Th>
            ))}
            <Table.Th />
          </Table.Tr>
        </Table.Thead>
        <Table.Tbody>
          {rows.map((row, i) => (
            <Table.Tr key={i}>
              {columns.map((c) => (
                <Table.Td key={c.name}>
                  <FieldInput
                    field={c}
                    value={getPath(row, c.name)}
                    onChange={(v) => setCell(i, c.name, v)}
                    errors={errors}
                    path={`${path}.${i}.${c.name}`}
                    clientId={clientId}
                    editing={editing}
                    compact
                  />
                  {errors[`${path}.${i}`] && c === columns[0] && (
                    <MText c="red" size="xs">{errors[`${path}.${i}`]}</MText>
                  )}
                </Table.Td>
              ))}
              <Table.Td>
                <ActionIcon variant="subtle" color="red" aria-label={`${text("actions.delete")} ${i + 1}`} onClick={() => onChange(rows.filter((_, j) => j !== i))}>
                  <IconTrash size={16} />
                </ActionIcon>
              </Table.Td>
            </Table.Tr>
          ))}
        </Table.Tbody>
      </Table>
      {own && <MText c="red" size="sm">{own}</MText>}
      <Group>
        <Button variant="light" leftSection={<IconPlus size={16} />} onClick={() => onChange([...rows, { ...(field.newRow ?? {}) }])}>
          {text("actions.add")}
        </Button>
      </Group>
    </Stack>
  );
}
