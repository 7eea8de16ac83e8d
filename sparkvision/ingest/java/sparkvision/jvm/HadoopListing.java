package sparkvision.jvm;

import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Deque;
import java.util.EnumSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.RemoteIterator;
import org.apache.hadoop.hdfs.DFSClient;
import org.apache.hadoop.hdfs.DistributedFileSystem;
import org.apache.hadoop.hdfs.protocol.DirectoryListing;
import org.apache.hadoop.hdfs.protocol.HdfsFileStatus;
import org.apache.spark.sql.catalyst.InternalRow;
import org.apache.spark.sql.catalyst.expressions.GenericInternalRow;
import org.apache.spark.sql.classic.SparkSession;
import org.apache.spark.sql.connector.catalog.SupportsRead;
import org.apache.spark.sql.connector.catalog.Table;
import org.apache.spark.sql.connector.catalog.TableCapability;
import org.apache.spark.sql.connector.catalog.TableProvider;
import org.apache.spark.sql.connector.expressions.Transform;
import org.apache.spark.sql.connector.read.Batch;
import org.apache.spark.sql.connector.read.InputPartition;
import org.apache.spark.sql.connector.read.PartitionReader;
import org.apache.spark.sql.connector.read.PartitionReaderFactory;
import org.apache.spark.sql.connector.read.Scan;
import org.apache.spark.sql.connector.read.ScanBuilder;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.apache.spark.sql.util.CaseInsensitiveStringMap;
import org.apache.spark.unsafe.types.UTF8String;
import org.apache.spark.util.SerializableConfiguration;

/**
 * The files of a drop on any Hadoop filesystem, listed in Spark tasks: (path, length) rows.
 *
 * <pre>spark.read.format("sparkvision.jvm.HadoopListing").option("path", uri).option("tasks", "4").load()</pre>
 *
 * <p>The driver lists only the top level of the drop (label folders and loose files: a few hundred names at most)
 * and hands them out to at most {@code tasks} tasks. Each task walks its folders with
 * {@link FileSystem#listStatusIterator} (on HDFS, its pages as the NameNode sends them, one call per 1,000
 * entries, without a qualified {@link Path} per file) and streams the files it finds: no process holds the
 * listing, whatever the number of files. {@code path} is relative to the drop ({@code label/.../file}),
 * {@code length} is the listed size. Names starting with {@code .} or {@code _} and names ending with
 * {@code ._COPYING_} are not part of a drop, at every level (Spark's and Hadoop's rule).
 */
public class HadoopListing implements TableProvider {
  public static final StructType SCHEMA =
      new StructType().add("path", DataTypes.StringType, false).add("length", DataTypes.LongType, false);

  @Override
  public StructType inferSchema(CaseInsensitiveStringMap options) {
    return SCHEMA;
  }

  @Override
  public Table getTable(StructType schema, Transform[] partitioning, Map<String, String> properties) {
    return new ListingTable(new CaseInsensitiveStringMap(properties));
  }

  /** Not part of a drop: hidden and temporary names (as Spark's file listing skips them). */
  public static boolean skipped(String name) {
    return name.startsWith(".") || name.startsWith("_") || name.endsWith("._COPYING_");
  }

  static final class ListingTable implements Table, SupportsRead {
    private final CaseInsensitiveStringMap options;

    ListingTable(CaseInsensitiveStringMap options) {
      this.options = options;
    }

    @Override
    public String name() {
      return "sparkvision_listing(" + options.get("path") + ")";
    }

    @Override
    @SuppressWarnings("deprecation")
    public StructType schema() {
      return SCHEMA;
    }

    @Override
    public Set<TableCapability> capabilities() {
      return EnumSet.of(TableCapability.BATCH_READ);
    }

    @Override
    public ScanBuilder newScanBuilder(CaseInsensitiveStringMap scanOptions) {
      return () -> new ListingScan(options.get("path"), Integer.parseInt(options.getOrDefault("tasks", "1")));
    }
  }

  static final class ListingScan implements Scan, Batch {
    private final String root;
    private final int tasks;
    private final Configuration conf;

    ListingScan(String root, int tasks) {
      this.root = root;
      this.tasks = Math.max(1, tasks);
      this.conf = SparkSession.active().sessionState().newHadoopConf();
    }

    @Override
    public StructType readSchema() {
      return SCHEMA;
    }

    @Override
    public Batch toBatch() {
      return this;
    }

    @Override
    public InputPartition[] planInputPartitions() {
      List<FileStatus> top = new ArrayList<>();
      try {
        Path path = new Path(root);
        for (FileStatus status : path.getFileSystem(conf).listStatus(path)) {
          if (!skipped(status.getPath().getName())) {
            top.add(status);
          }
        }
      } catch (IOException e) {
        throw new UncheckedIOException("cannot list " + root, e);
      }
      top.sort((a, b) -> a.getPath().getName().compareTo(b.getPath().getName()));
      int n = Math.max(1, Math.min(tasks, top.size()));
      InputPartition[] partitions = new InputPartition[n];
      for (int i = 0; i < n; i++) {
        // contiguous slices of the sorted entries, as even as their count allows
        List<FileStatus> slice = top.subList(i * top.size() / n, (i + 1) * top.size() / n);
        String[] names = new String[slice.size()];
        boolean[] folders = new boolean[slice.size()];
        long[] lengths = new long[slice.size()];
        for (int j = 0; j < names.length; j++) {
          names[j] = slice.get(j).getPath().getName();
          folders[j] = slice.get(j).isDirectory();
          lengths[j] = slice.get(j).getLen();
        }
        partitions[i] = new Entries(names, folders, lengths);
      }
      return partitions;
    }

    @Override
    public PartitionReaderFactory createReaderFactory() {
      return new ReaderFactory(root, new SerializableConfiguration(conf));
    }
  }

  /** Top-level entries of the drop that one listing task walks. */
  static final class Entries implements InputPartition {
    final String[] names;
    final boolean[] folders;
    final long[] lengths;

    Entries(String[] names, boolean[] folders, long[] lengths) {
      this.names = names;
      this.folders = folders;
      this.lengths = lengths;
    }
  }

  static final class ReaderFactory implements PartitionReaderFactory {
    private final String root;
    private final SerializableConfiguration conf;

    ReaderFactory(String root, SerializableConfiguration conf) {
      this.root = root;
      this.conf = conf;
    }

    @Override
    public PartitionReader<InternalRow> createReader(InputPartition partition) {
      try {
        return new Walker(root, (Entries) partition, conf.value());
      } catch (IOException e) {
        throw new UncheckedIOException(e);
      }
    }
  }

  /** Depth-first walk of a task's entries: one open directory listing per level, files streamed. */
  static final class Walker implements PartitionReader<InternalRow> {
    private final FileSystem fs;
    private final Path root;
    private final Entries entries;
    private final Deque<Object[]> open = new ArrayDeque<>(); // {Children, String prefix}
    private int nextEntry;
    private String path;
    private long length;

    Walker(String root, Entries entries, Configuration conf) throws IOException {
      this.root = new Path(root);
      this.fs = this.root.getFileSystem(conf);
      this.entries = entries;
    }

    @Override
    public boolean next() throws IOException {
      while (true) {
        if (!open.isEmpty()) {
          Object[] top = open.peek();
          Children children = (Children) top[0];
          if (!children.next()) {
            open.pop();
            continue;
          }
          if (skipped(children.name)) {
            continue;
          }
          String rel = top[1] + "/" + children.name;
          if (children.folder) {
            open.push(new Object[] {children.open(), rel});
            continue;
          }
          path = rel;
          length = children.length;
          return true;
        }
        if (nextEntry >= entries.names.length) {
          return false;
        }
        int i = nextEntry++;
        if (entries.folders[i]) {
          open.push(new Object[] {children(new Path(root, entries.names[i])), entries.names[i]});
          continue;
        }
        path = entries.names[i];
        length = entries.lengths[i];
        return true;
      }
    }

    /** The entries of {@code folder}: on HDFS from the listing's pages as they are, else as FileStatus. */
    private Children children(Path folder) throws IOException {
      if (fs instanceof DistributedFileSystem dfs) {
        return new Listed(dfs.getClient(), dfs.makeQualified(folder).toUri().getPath());
      }
      return new Statuses(fs, folder);
    }

    @Override
    public InternalRow get() {
      return new GenericInternalRow(new Object[] {UTF8String.fromString(path), length});
    }

    @Override
    public void close() {
      open.clear();
    }
  }

  /** A folder's entries, one after the other: {@link #next} makes the next one current. */
  abstract static class Children {
    /** The current entry's name, whether it is a folder, its length. */
    String name;
    boolean folder;
    long length;

    /** Whether there is a next entry (then current). */
    abstract boolean next() throws IOException;

    /** The entries of the current entry, a folder. */
    abstract Children open() throws IOException;
  }

  /** Any Hadoop filesystem's listing. */
  static final class Statuses extends Children {
    private final FileSystem fs;
    private final RemoteIterator<FileStatus> statuses;
    private FileStatus current;

    Statuses(FileSystem fs, Path folder) throws IOException {
      this.fs = fs;
      this.statuses = fs.listStatusIterator(folder);
    }

    @Override
    Children open() throws IOException {
      return new Statuses(fs, current.getPath());
    }

    @Override
    boolean next() throws IOException {
      if (!statuses.hasNext()) {
        return false;
      }
      current = statuses.next();
      name = current.getPath().getName();
      folder = current.isDirectory();
      length = current.getLen();
      return true;
    }
  }

  /**
   * An HDFS folder's listing read from its pages (up to {@code dfs.ls.limit} entries per NameNode call, as
   * {@link FileSystem#listStatusIterator} does) without making a qualified {@link Path} of every entry: that
   * URI parsing was most of the listing's CPU in the driver JVM, more than the NameNode's answers.
   */
  static final class Listed extends Children {
    private final DFSClient client;
    private final String src;
    private DirectoryListing page;
    private int index;

    Listed(DFSClient client, String src) throws IOException {
      this.client = client;
      this.src = src;
      this.page = list(HdfsFileStatus.EMPTY_NAME);
    }

    @Override
    Children open() throws IOException {
      return new Listed(client, src + "/" + name);
    }

    private DirectoryListing list(byte[] after) throws IOException {
      DirectoryListing listing = client.listPaths(src, after, false);
      if (listing == null) {
        throw new FileNotFoundException("File " + src + " does not exist.");
      }
      return listing;
    }

    @Override
    boolean next() throws IOException {
      while (index >= page.getPartialListing().length) {
        if (!page.hasMore()) {
          return false;
        }
        page = list(page.getLastName());
        index = 0;
      }
      HdfsFileStatus current = page.getPartialListing()[index++];
      name = current.getLocalName();
      folder = current.isDirectory();
      length = current.getLen();
      return true;
    }
  }
}
