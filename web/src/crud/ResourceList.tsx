// The list page of any section: search, pages, create, edit on click, delete with confirmation.
import { ActionIcon, Alert, Button, Center, Group, Loader, Pagination, Stack, Table, Text, TextInput, Title } from "@mantine/core";
import { useDebouncedValue } from "@mantine/hooks";
import { IconPencil, IconPlus, IconSearch, IconTrash } from "@tabler/icons-react";
import { useState, type ReactNode } from "react";
import { useTranslation } from "react-i18next";
import { useNavigate } from "react-router-dom";
import type { Query } from "../api/client";
import { useMe } from "../auth";
import { can } from "../rights";
import { useDelete } from "./remove";
import { sectionPath, useList } from "./resource";
import { sectionUrl } from "./ResourceForm";
import { getPath, useText } from "./text";
import type { Row, SectionDef } from "./types";

const PAGE = 50;

interface Props {
  section: SectionDef;
  clientId: number | null;
  /** Embedded lists (contacts of a classifier) handle opening rows themselves. */
  onOpen?: (row: Row | null) => void;
  query?: Query;
  heading?: boolean;
}

function cell(value: unknown, t: (k: string) => string): ReactNode {
  if (typeof value === "boolean") return value ? t("common.yes") : t("common.no");
  if (value === null || value === undefined || value === "") return "—";
  if (Array.isArray(value)) return value.length;
  return String(value);
}

export function ResourceList({ section, clientId, onOpen, query, heading = true }: Props) {
  const text = useText();
  const { t } = useTranslation();
  const me = useMe();
  const navigate = useNavigate();
  const [search, setSearch] = useState("");
  const [q] = useDebouncedValue(search, 300);
  const [page, setPage] = useState(1);
  const path = sectionPath(section, clientId);
  const list = useList(path, {
    limit: PAGE,
    offset: (page - 1) * PAGE,
    q: section.search === false ? undefined : q || undefined,
    sort: section.sort,
    ...section.query,
    ...query,
  });
  const remove = useDelete(path);
  const base = sectionUrl(section, clientId);
  const open = (row: Row | null) => (onOpen ? onOpen(row) : navigate(row ? `${base}/${row.id}` : `${base}/new`));
  const items = list.data?.items ?? [];
  const total = list.data?.total ?? 0;
  const mayCreate = can(me, section.policy, "create");
  const mayDelete = can(me, section.policy, "delete");

  return (
    <Stack>
      <Group justify="space-between">
        {heading ? <Title order={2}>{text(section.title)}</Title> : <span />}
        {mayCreate && (
          <Button leftSection={<IconPlus size={16} />} onClick={() => open(null)}>
            {t("actions.create")}
          </Button>
        )}
      </Group>
      {section.search !== false && (
        <TextInput
          aria-label={t("actions.search")}
          placeholder={t("actions.search")}
          leftSection={<IconSearch size={16} />}
          value={search}
          onChange={(e) => {
            setSearch(e.currentTarget.value);
            setPage(1);
          }}
        />
      )}
      {list.error && <Alert color="red">{list.error.message}</Alert>}
      {list.isPending ? (
        <Center p="xl">
          <Loader aria-label={t("common.loading")} />
        </Center>
      ) : items.length === 0 ? (
        <Text c="dimmed" ta="center" p="xl">
          {q ? t("common.nothingFound") : t("common.empty")}
        </Text>
      ) : (
        <Table.ScrollContainer minWidth={500}>
          <Table highlightOnHover striped aria-label={text(section.title)}>
            <Table.Thead>
              <Table.Tr>
                {section.columns.map((c) => (
                  <Table.Th key={c.key}>{text(c.label)}</Table.Th>
                ))}
                <Table.Th w={90} />
              </Table.Tr>
            </Table.Thead>
            <Table.Tbody>
              {items.map((row) => (
                <Table.Tr key={String(row.id)} style={{ cursor: "pointer" }} onClick={() => open(row)}>
                  {section.columns.map((c) => (
                    <Table.Td key={c.key}>{c.render ? c.render(row, { t: text }) : cell(getPath(row, c.key), t)}</Table.Td>
                  ))}
                  <Table.Td onClick={(e) => e.stopPropagation()}>
                    <Group gap={4} wrap="nowrap">
                      <ActionIcon variant="subtle" aria-label={`${t("actions.edit")} ${section.rowLabel(row)}`} onClick={() => open(row)}>
                        <IconPencil size={16} />
                      </ActionIcon>
                      {mayDelete && (
                        <ActionIcon
                          variant="subtle"
                          color="red"
                          aria-label={`${t("actions.delete")} ${section.rowLabel(row)}`}
                          onClick={() => remove(row.id, section.rowLabel(row))}
                        >
                          <IconTrash size={16} />
                        </ActionIcon>
                      )}
                    </Group>
                  </Table.Td>
                </Table.Tr>
              ))}
            </Table.Tbody>
          </Table>
        </Table.ScrollContainer>
      )}
      <Group justify="space-between">
        <Text size="sm" c="dimmed">
          {t("common.total", { count: total })}
        </Text>
        {total > PAGE && <Pagination total={Math.ceil(total / PAGE)} value={page} onChange={setPage} />}
      </Group>
    </Stack>
  );
}
